"""``*_smoke`` trainers: the Table trainers at smoke scale (``nnUNetv2_openvocab_reproduce --scale smoke``).

One change each, nnU-Net's ``_<N>epochs`` convention: the CPU short schedule (a fixed few epochs and iterations,
no mirroring, every patch with foreground, AdamW) on top of the paper's trainer of the same name. So a smoke run
trains exactly the paper's variant, only shorter. ``nnUNetTrainer_smoke`` is stock nnU-Net's trainer with that
schedule: the smoke stand-in for ``nnUNetTrainer_500epochs`` (segmentation pretraining of Table VIII row 6).
"""
from __future__ import annotations

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_openvocab.training.cpu_variants import FixedSchedule, NoMirroring, ShortRunOptimizer
from nnunetv2_openvocab.training.variants import (nnUNetTrainerOpenVocabCanonicalPrompts,
                                                  nnUNetTrainerOpenVocabFrozenEncoderCanonicalPrompts,
                                                  nnUNetTrainerOpenVocabFrozenEncoderCrossAttentionCanonicalPrompts)


class SmokeSchedule(FixedSchedule, NoMirroring, ShortRunOptimizer):
    """Mixin: 4 epochs of 25 iterations (100 steps), 1 validation iteration per epoch."""

    schedule = (4, 25, 1)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.oversample_foreground_percent = 1.0


class nnUNetTrainer_smoke(SmokeSchedule, nnUNetTrainer):
    """Stock nnU-Net segmentation training at smoke scale (stand-in for ``nnUNetTrainer_500epochs``)."""


class nnUNetTrainerOpenVocabCanonicalPrompts_smoke(SmokeSchedule, nnUNetTrainerOpenVocabCanonicalPrompts):
    """Table VIII row 1 at smoke scale."""


class nnUNetTrainerOpenVocabFrozenEncoderCanonicalPrompts_smoke(SmokeSchedule,
                                                                nnUNetTrainerOpenVocabFrozenEncoderCanonicalPrompts):
    """Table VIII rows 2-4 and 6 (and Tables II, VI, VII) at smoke scale."""


class nnUNetTrainerOpenVocabFrozenEncoderCrossAttentionCanonicalPrompts_smoke(
        SmokeSchedule, nnUNetTrainerOpenVocabFrozenEncoderCrossAttentionCanonicalPrompts):
    """Table VIII row 5 at smoke scale."""
