"""Trainer variants, each overriding one thing (nnU-Net's convention): encoder locking, connector, schedule."""
from __future__ import annotations

import torch
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_openvocab.training.nnUNetTrainerOpenVocab import nnUNetTrainerOpenVocab
from nnunetv2_openvocab.training.pretrained_backbone import load_pretrained_backbone


class nnUNetTrainerOpenVocabFrozenEncoder(nnUNetTrainerOpenVocab):
    """The paper's best setting: the pretrained image encoder is locked; decoder and text head are trained.

    Weights come from the plans' ``openvocab.pretrained_checkpoint`` (planner ``--pretrained``) or from
    ``nnUNetv2_train ... -pretrained_weights CKPT``, which nnU-Net applies after this initialisation.
    """

    def initialize(self):
        super().initialize()
        checkpoint = self.openvocab.get("pretrained_checkpoint")
        if checkpoint:
            self.print_to_log_file(load_pretrained_backbone(self._bare_network(), checkpoint).summary())
        else:
            self.print_to_log_file("No openvocab.pretrained_checkpoint in the plans: pass -pretrained_weights, "
                                   "otherwise the locked encoder keeps its random initialisation.")
        self._bare_network().freeze_encoder()


class nnUNetTrainerOpenVocabCrossAttention(nnUNetTrainerOpenVocab):
    """Ablation: prompts attend to the image's bottleneck tokens before becoming queries."""

    connector = "cross_attention"


class _Schedule:
    """Fixed (epochs, iterations per epoch, validation iterations) for CPU runs."""

    schedule: tuple

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = self.schedule

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, _ = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        # no mirroring in training, hence none at inference either (nnU-Net set it in the call above); also 8x
        # faster CPU validation and prediction
        self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, None


class nnUNetTrainer_CPUSmoke(_Schedule, nnUNetTrainer):
    """Stock trainer, 1 epoch of 2 iterations: proves a plans/network combination trains at all."""

    schedule = (1, 2, 1)


class nnUNetTrainerOpenVocab_CPUSmoke(_Schedule, nnUNetTrainerOpenVocab):
    schedule = (1, 2, 1)


class nnUNetTrainerOpenVocab_CPUShort(_Schedule, nnUNetTrainerOpenVocab):
    """A few CPU minutes for a width-8 STUNet on small patches: every patch holds foreground, and AdamW
    converges in far fewer steps than nnU-Net's SGD."""

    schedule = (15, 50, 2)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.oversample_foreground_percent = 1.0

    def configure_optimizers(self):
        self.initial_lr = 3e-3
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=self.initial_lr, weight_decay=self.weight_decay)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)


class nnUNetTrainerOpenVocabFrozenEncoder_CPUSmoke(_Schedule, nnUNetTrainerOpenVocabFrozenEncoder):
    schedule = (1, 2, 1)


class nnUNetTrainerOpenVocabCrossAttention_CPUSmoke(_Schedule, nnUNetTrainerOpenVocabCrossAttention):
    schedule = (1, 2, 1)
