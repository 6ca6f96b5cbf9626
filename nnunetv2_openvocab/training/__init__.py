"""Trainers of nnunetv2-openvocab. nnU-Net finds them through ``nnUNet_extTrainer`` (see trainer_discovery)."""
from nnunetv2_openvocab.training.nnUNetTrainerOpenVocab import nnUNetTrainerOpenVocab
from nnunetv2_openvocab.training.variants import (nnUNetTrainer_CPUSmoke, nnUNetTrainerOpenVocab_CPUShort,
                                                  nnUNetTrainerOpenVocab_CPUSmoke,
                                                  nnUNetTrainerOpenVocabCrossAttention,
                                                  nnUNetTrainerOpenVocabCrossAttention_CPUSmoke,
                                                  nnUNetTrainerOpenVocabFrozenEncoder,
                                                  nnUNetTrainerOpenVocabFrozenEncoder_CPUSmoke)

__all__ = [
    "nnUNetTrainerOpenVocab",
    "nnUNetTrainerOpenVocabFrozenEncoder",
    "nnUNetTrainerOpenVocabCrossAttention",
    "nnUNetTrainer_CPUSmoke",
    "nnUNetTrainerOpenVocab_CPUSmoke",
    "nnUNetTrainerOpenVocab_CPUShort",
    "nnUNetTrainerOpenVocabFrozenEncoder_CPUSmoke",
    "nnUNetTrainerOpenVocabCrossAttention_CPUSmoke",
]
