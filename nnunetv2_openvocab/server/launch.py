"""Starting the server safely: a bearer token is required unless it binds to loopback (the key comes from an
environment variable and is never logged), and the model is loaded once before uvicorn serves the app."""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Optional

import torch

from nnunetv2_openvocab.inference.model_loading import DEFAULT_CHECKPOINT
from nnunetv2_openvocab.inference.predictor import OpenVocabPredictor
from nnunetv2_openvocab.server.app import ServerSettings, create_app
from nnunetv2_openvocab.server.body_limit import BodyLimit
from nnunetv2_openvocab.user_errors import UserError


class ServerSetupError(UserError):
    """The server would start unsafely (no token on a public address) or without its key."""


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def api_key_from_environment(variable: Optional[str], host: str) -> Optional[str]:
    if variable is None:
        if not is_loopback(host):
            raise ServerSetupError(f"--host {host} is reachable from other machines: pass --api-key-env VARIABLE "
                                   f"naming an environment variable that holds the API key.")
        return None
    key = os.environ.get(variable, "").strip()
    if not key:
        raise ServerSetupError(f"--api-key-env {variable}: the environment variable is unset or empty; export it "
                               f"with the API key (e.g. {variable}=$(openssl rand -hex 24)).")
    return key


def serve(model_folder: Path, host: str, port: int, settings: ServerSettings, folds=None,
          checkpoint_name: str = DEFAULT_CHECKPOINT, device: Optional[torch.device] = None) -> None:
    import uvicorn

    predictor = OpenVocabPredictor(device=device, show_progress=False)
    predictor.initialize_from_trained_model_folder(model_folder, folds, checkpoint_name)
    app = BodyLimit(create_app(predictor, settings), settings.upload.max_upload_bytes)
    uvicorn.run(app, host=host, port=port, log_level="info")
