"""``nnUNetv2_openvocab_env``: prints the one line that lets the stock nnUNetv2_train/predict find our trainers
(trainer_discovery.py); use it as ``eval "$(nnUNetv2_openvocab_env)"``."""
from __future__ import annotations

import os
import shlex

from nnunetv2_openvocab.trainer_discovery import ext_trainer_value


def main() -> None:
    print(f"export nnUNet_extTrainer={shlex.quote(ext_trainer_value(os.environ.get('nnUNet_extTrainer')))}")
