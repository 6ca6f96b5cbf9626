"""Trainer variants, each overriding one hook (nnU-Net's convention), grouped by what they change.

| variant                                          | hook                         | change                               |
| nnUNetTrainerOpenVocabFrozenEncoder              | initialize                   | pretrained image encoder locked      |
| nnUNetTrainerOpenVocabCrossAttention             | connector                    | cross-attention connector            |
| nnUNetTrainerOpenVocabFrozenEncoderCrossAttention| (both of the above)          | Table VIII row 5                     |
| nnUNetTrainerOpenVocabCanonicalPrompts           | training_prompts             | canonical prompt only (the paper's)  |
| nnUNetTrainerOpenVocabFrozenEncoderCanonicalPrompts | (locked + canonical)      | Table VIII row 6 as the paper ran it |
| nnUNetTrainerOpenVocabFrozenEncoderCrossAttentionCanonicalPrompts | (row 5 + canonical) | row 5 as the paper ran it   |
"""
from __future__ import annotations

import torch

from nnunetv2_openvocab.prompts.dataset_prompts import DatasetPrompts
from nnunetv2_openvocab.training.nnUNetTrainerOpenVocab import TrainingRefused, nnUNetTrainerOpenVocab


class nnUNetTrainerOpenVocabFrozenEncoder(nnUNetTrainerOpenVocab):
    """The paper's best setting: the pretrained image encoder is locked; decoder and text head are trained.

    Weights come from the plans' ``openvocab.pretrained_checkpoint`` (planner ``--pretrained``; the base
    trainer loads it) or from ``nnUNetv2_train ... -pretrained_weights CKPT``, which nnU-Net applies after
    initialize. Training refuses to start when the encoder still holds its random initialisation.
    """

    def initialize(self):
        super().initialize()
        self._bare_network().freeze_encoder()
        # without plans weights, -pretrained_weights may still arrive after initialize: compare at train start
        self._random_encoder_sample = None if self.spec.pretrained_checkpoint else self._encoder_sample().clone()

    def _encoder_sample(self) -> torch.Tensor:
        return next(self._bare_network().conv_blocks_context.parameters()).detach()

    def on_train_start(self):
        if not self.was_initialized:
            self.initialize()
        sample = self._random_encoder_sample
        if sample is not None and torch.equal(self._encoder_sample(), sample):
            raise TrainingRefused(
                f"{type(self).__name__} locks the image encoder, but no pretrained weights were given: plans "
                f"{self.plans_manager.plans_name!r} have no openvocab.pretrained_checkpoint and no "
                f"-pretrained_weights was passed. Fix: re-plan with nnUNetv2_openvocab_plan_and_preprocess "
                f"--pretrained PATH, pass nnUNetv2_train ... -pretrained_weights CHECKPOINT, or train "
                f"nnUNetTrainerOpenVocab (encoder trained).")
        super().on_train_start()


class nnUNetTrainerOpenVocabCrossAttention(nnUNetTrainerOpenVocab):
    """Ablation: prompts attend to the image's bottleneck tokens before becoming queries."""

    connector = "cross_attention"


class nnUNetTrainerOpenVocabFrozenEncoderCrossAttention(nnUNetTrainerOpenVocabFrozenEncoder,
                                                        nnUNetTrainerOpenVocabCrossAttention):
    """Table VIII row 5: pretrained locked encoder (MGCL) with the cross-attention connector."""


class nnUNetTrainerOpenVocabCanonicalPrompts(nnUNetTrainerOpenVocab):
    """The paper's fine-tuning: each label is prompted by its canonical prompt only, no synonym sampling.

    Synonym sampling (the base trainer) is this project's addition; it also makes Table VII's synonym column
    easier, so this variant is the one that reproduces the paper.
    """

    def training_prompts(self, dataset_prompts: DatasetPrompts) -> DatasetPrompts:
        return dataset_prompts.canonical_only()


class nnUNetTrainerOpenVocabFrozenEncoderCanonicalPrompts(nnUNetTrainerOpenVocabCanonicalPrompts,
                                                          nnUNetTrainerOpenVocabFrozenEncoder):
    """The paper's model as published (Table VIII row 6, Tables II-VII): locked pretrained encoder, MLP connector,
    each label prompted by its canonical prompt only."""


class nnUNetTrainerOpenVocabFrozenEncoderCrossAttentionCanonicalPrompts(
        nnUNetTrainerOpenVocabCanonicalPrompts, nnUNetTrainerOpenVocabFrozenEncoderCrossAttention):
    """Table VIII row 5 as published: locked pretrained encoder, cross-attention connector, canonical prompts."""
