"""Flags the README's paper protocol names exist and reach their settings (issue 20, item 6)."""
from __future__ import annotations

import re
from pathlib import Path

from nnunetv2.training.nnUNetTrainer.variants.training_length import nnUNetTrainer_Xepochs

from nnunetv2_openvocab.commands.pretrain import _config, build_parser
from nnunetv2_openvocab.pretraining.config import TrainConfig

README = Path(__file__).resolve().parents[1] / "README.md"


def test_image_encoder_learning_rate_flag_reaches_the_training_config():
    args = build_parser().parse_args(["train", "--manifest", "m.jsonl", "--out", "run", "--image-encoder-lr", "3e-4"])
    assert _config(TrainConfig, None, args).image_encoder_lr == 3e-4
    assert "--image-encoder-lr" in README.read_text(encoding="utf-8")


def test_the_stock_trainers_the_readme_names_exist_in_nnunet():
    names = set(re.findall(r"-tr (nnUNetTrainer_\w+)", README.read_text(encoding="utf-8")))
    assert "nnUNetTrainer_500epochs" in names  # the paper's 500-epoch segmentation pretraining
    assert all(hasattr(nnUNetTrainer_Xepochs, name) for name in names), names  # stock trainers the README names
