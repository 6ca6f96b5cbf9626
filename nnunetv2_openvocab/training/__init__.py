"""Trainers of nnunetv2-openvocab. nnU-Net finds them through ``nnUNet_extTrainer`` (see trainer_discovery)."""
from nnunetv2_openvocab.training.cpu_variants import nnUNetTrainerOpenVocab_CPUShort
from nnunetv2_openvocab.training.nnUNetTrainerOpenVocab import nnUNetTrainerOpenVocab
from nnunetv2_openvocab.training.smoke_variants import (
    nnUNetTrainer_smoke, nnUNetTrainerOpenVocabCanonicalPrompts_smoke,
    nnUNetTrainerOpenVocabFrozenEncoderCanonicalPrompts_smoke,
    nnUNetTrainerOpenVocabFrozenEncoderCrossAttentionCanonicalPrompts_smoke)
from nnunetv2_openvocab.training.variants import (nnUNetTrainerOpenVocabCanonicalPrompts,
                                                  nnUNetTrainerOpenVocabCrossAttention,
                                                  nnUNetTrainerOpenVocabFrozenEncoder,
                                                  nnUNetTrainerOpenVocabFrozenEncoderCanonicalPrompts,
                                                  nnUNetTrainerOpenVocabFrozenEncoderCrossAttention,
                                                  nnUNetTrainerOpenVocabFrozenEncoderCrossAttentionCanonicalPrompts)

__all__ = [
    "nnUNetTrainerOpenVocab",
    "nnUNetTrainerOpenVocabFrozenEncoder",
    "nnUNetTrainerOpenVocabCrossAttention",
    "nnUNetTrainerOpenVocabFrozenEncoderCrossAttention",
    "nnUNetTrainerOpenVocabCanonicalPrompts",
    "nnUNetTrainerOpenVocabFrozenEncoderCanonicalPrompts",
    "nnUNetTrainerOpenVocabFrozenEncoderCrossAttentionCanonicalPrompts",
    "nnUNetTrainerOpenVocab_CPUShort",
    "nnUNetTrainer_smoke",
    "nnUNetTrainerOpenVocabCanonicalPrompts_smoke",
    "nnUNetTrainerOpenVocabFrozenEncoderCanonicalPrompts_smoke",
    "nnUNetTrainerOpenVocabFrozenEncoderCrossAttentionCanonicalPrompts_smoke",
]
