"""``nnUNetv2_openvocab_serve``: load a model once and serve it over HTTP (server/; ``server.launch.serve`` is the
plain function behind it)."""
from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import torch

from nnunetv2_openvocab.commands.prediction_arguments import parse_folds
from nnunetv2_openvocab.inference.model_loading import DEFAULT_CHECKPOINT
from nnunetv2_openvocab.server.app import ServerSettings
from nnunetv2_openvocab.server.launch import api_key_from_environment, serve
from nnunetv2_openvocab.server.uploads import UploadLimits
from nnunetv2_openvocab.user_errors import exit_on_user_error

EPILOG = """\
examples:
  # this machine only (no token needed on loopback); open http://127.0.0.1:8000/ to try prompts
  nnUNetv2_openvocab_serve -m MODEL_FOLDER
  # reachable from the network: a bearer token is required (the key is read from the variable, never logged)
  OPENVOCAB_API_KEY=$(openssl rand -hex 24) nnUNetv2_openvocab_serve -m MODEL_FOLDER --host 0.0.0.0 \\
      --api-key-env OPENVOCAB_API_KEY
  curl -H "Authorization: Bearer $OPENVOCAB_API_KEY" -F file=@ct.nii.gz -F 'prompts=["liver", "renal organs"]' \\
      http://HOST:8000/jobs
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnUNetv2_openvocab_serve", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Serve a trained nnunetv2-openvocab model over HTTP (OpenAPI "
                                                 "schema at /docs) with a page to try prompts at /.")
    parser.add_argument("-m", required=True, help="model folder written by nnUNetv2_train")
    parser.add_argument("-f", nargs="+", default=None, help="folds to ensemble (default: every trained fold)")
    parser.add_argument("-chk", default=DEFAULT_CHECKPOINT, help="checkpoint file name (default %(default)s)")
    parser.add_argument("-device", default="cuda" if torch.cuda.is_available() else "cpu",
                        choices=["cuda", "cpu", "mps"], help="device (default %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s: this machine)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key-env", default=None, metavar="VAR",
                        help="environment variable holding the bearer token (required unless bound to loopback)")
    parser.add_argument("--work-folder", default=str(Path(tempfile.gettempdir()) / "nnunetv2_openvocab_server"),
                        help="per-job folders; a restarted server on the same folder reports unfinished jobs "
                             "failed (default %(default)s)")
    parser.add_argument("--retention-minutes", type=float, default=60.0, help="delete finished jobs after this")
    parser.add_argument("--max-queued", type=int, default=32, help="queued jobs before 429 (default %(default)s)")
    parser.add_argument("--max-prompts", type=int, default=64, help="prompts per request (default %(default)s)")
    parser.add_argument("--max-upload-mb", type=float, default=512.0, help="upload size limit (default %(default)s)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    with exit_on_user_error(parser.prog):
        settings = ServerSettings(Path(args.work_folder), api_key_from_environment(args.api_key_env, args.host),
                                  max_prompts=args.max_prompts, max_queued=args.max_queued,
                                  retention_s=60 * args.retention_minutes,
                                  upload=UploadLimits(max_upload_bytes=int(args.max_upload_mb * 1024 ** 2)))
        serve(Path(args.m), args.host, args.port, settings, parse_folds(args.f), args.chk, torch.device(args.device))


if __name__ == "__main__":
    main()
