"""The one line (``nnUNetv2_openvocab_env``) that lets the stock nnUNetv2_train/predict find our trainers.

nnU-Net searches trainers inside nnunetv2 and, as its one supported external route, in the folders listed in
``nnUNet_extTrainer``. We point it at a folder holding a single shim module, never at site-packages.
``nnUNetv2_openvocab_env`` (commands/env.py) prints the line: ``eval "$(nnUNetv2_openvocab_env)"``.
"""
from __future__ import annotations

import os
from pathlib import Path

import nnunetv2_openvocab

TRAINER_SHIM_FOLDER = Path(nnunetv2_openvocab.__file__).parent / "nnunet_trainer_shims"


def ext_trainer_value(existing: str | None = None) -> str:
    """nnUNet_extTrainer with our shim folder first, keeping other folders already listed."""
    folders = [str(TRAINER_SHIM_FOLDER)] + [f for f in (existing or "").split(os.pathsep) if f]
    return os.pathsep.join(dict.fromkeys(folders))
