"""The planner's part of the OpenVocab spec: resolve the text encoder and pretrained checkpoint once.

A pretrained checkpoint may be an aligned checkpoint from ``nnUNetv2_openvocab_pretrain export`` (then its
aligned text encoder is the one used, and its image encoder fixes STUNet's depth and widths) or an nnU-Net
checkpoint (.pth/.model) of a segmentation-pretrained STUNet.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from nnunetv2_openvocab.aligned_checkpoint import is_aligned_checkpoint, read_aligned_checkpoint
from nnunetv2_openvocab.model_spec import OpenVocabSpec
from nnunetv2_openvocab.prompts.dataset_prompts import foreground_label_names
from nnunetv2_openvocab.text.encoder import FrozenTextEncoder

logger = logging.getLogger(__name__)


def _spec_for_plans(spec: str) -> str:
    """Folders are stored as absolute paths so that training from another working directory finds them."""
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.is_dir() else spec


def aligned_image_encoder_arch(pretrained: Optional[str]) -> Optional[dict]:
    """STUNet depth/dims of an aligned checkpoint's image encoder, or None for other checkpoints."""
    return read_aligned_checkpoint(pretrained).image_encoder_depth_and_dims if is_aligned_checkpoint(pretrained) else None


def plan_openvocab_spec(dataset_json: dict, text_encoder: str, pretrained: Optional[str] = None) -> OpenVocabSpec:
    if pretrained is not None:
        if not Path(pretrained).exists():
            raise FileNotFoundError(f"--pretrained {pretrained}: no such file or folder. Give an aligned checkpoint "
                                    f"folder (nnUNetv2_openvocab_pretrain export) or an nnU-Net checkpoint .pth/.model.")
        if is_aligned_checkpoint(pretrained):
            logger.info("Using the aligned text encoder of %s instead of %s", pretrained, text_encoder)
            text_encoder = pretrained
    encoder = FrozenTextEncoder(text_encoder)  # fails early, with the where-looked message
    return OpenVocabSpec(
        text_encoder=_spec_for_plans(text_encoder), text_encoder_fingerprint=encoder.fingerprint,
        embedding_dim=encoder.embedding_dim,
        label_names=tuple(foreground_label_names(dataset_json["labels"])),
        pretrained_checkpoint=str(Path(pretrained).resolve()) if pretrained else None)
