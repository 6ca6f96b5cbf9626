"""CPU schedules: a fixed number of epochs and iterations, no mirroring, for demos and tests on a laptop."""
from __future__ import annotations

import torch
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

from nnunetv2_openvocab.training.nnUNetTrainerOpenVocab import nnUNetTrainerOpenVocab


class NoMirroring:
    """Mixin: no mirroring in training, hence none at inference either (also 8x faster CPU validation)."""

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, _ = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None  # nnU-Net set it in the call above
        return rotation, dummy_2d, initial_patch_size, None


class FixedSchedule:
    """Mixin: ``schedule`` = (epochs, iterations per epoch, validation iterations per epoch)."""

    schedule: tuple

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = self.schedule


class ShortRunOptimizer:
    """Mixin: AdamW at 3e-3 with nnU-Net's poly decay; converges in far fewer steps than nnU-Net's SGD."""

    def configure_optimizers(self):
        self.initial_lr = 3e-3
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=self.initial_lr, weight_decay=self.weight_decay)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)


class nnUNetTrainerOpenVocab_CPUShort(FixedSchedule, NoMirroring, ShortRunOptimizer, nnUNetTrainerOpenVocab):
    """A few CPU minutes for a width-8 STUNet on small patches: every patch holds foreground, AdamW."""

    schedule = (15, 50, 2)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.oversample_foreground_percent = 1.0
