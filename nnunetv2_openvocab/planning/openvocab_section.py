"""The ``openvocab`` section of STUNet plans: what the OpenVocab trainer and predictor need besides nnU-Net's plans.

{"text_encoder": spec or folder, "embedding_dim": int, "text_encoder_fingerprint": sha256,
 "label_names": [...], "pretrained_checkpoint": path or null}

A pretrained checkpoint may be an aligned checkpoint from ``nnUNetv2_openvocab_pretrain export`` (then its
aligned text encoder is the one used, and its image encoder fixes STUNet's depth and widths) or an nnU-Net
checkpoint (.pth/.model) of a segmentation-pretrained STUNet.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from nnunetv2_openvocab.prompts.dataset_prompts import BACKGROUND
from nnunetv2_openvocab.text.encoder import ALIGNED_MANIFEST, FrozenTextEncoder, resolve_text_encoder
from nnunetv2_openvocab.text.projection import read_aligned_manifest

logger = logging.getLogger(__name__)


def _spec_for_plans(spec: str) -> str:
    """Folders are stored as absolute paths so that training from another working directory finds them."""
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.is_dir() else spec


def aligned_image_encoder_arch(pretrained: Optional[str]) -> Optional[dict]:
    """STUNet depth/dims of an aligned checkpoint's image encoder, or None for other checkpoints."""
    if pretrained and (Path(pretrained) / ALIGNED_MANIFEST).is_file():
        arch = read_aligned_manifest(pretrained)["image_encoder"].get("arch_kwargs", {})
        return {k: arch[k] for k in ("depth", "dims") if k in arch} or None
    return None


def build_openvocab_section(dataset_json: dict, text_encoder: str, pretrained: Optional[str] = None) -> dict:
    if pretrained is not None:
        if not Path(pretrained).exists():
            raise FileNotFoundError(f"--pretrained {pretrained}: no such file or folder. Give an aligned checkpoint "
                                    f"folder (nnUNetv2_openvocab_pretrain export) or an nnU-Net checkpoint .pth/.model.")
        if (Path(pretrained) / ALIGNED_MANIFEST).is_file():
            logger.info("Using the aligned text encoder of %s instead of %s", pretrained, text_encoder)
            text_encoder = pretrained
    resolve_text_encoder(text_encoder)  # fail early, with the where-looked message
    encoder = FrozenTextEncoder(text_encoder)
    return {
        "text_encoder": _spec_for_plans(text_encoder),
        "embedding_dim": encoder.embedding_dim,
        "text_encoder_fingerprint": encoder.fingerprint,
        "label_names": [name for name in dataset_json["labels"] if name != BACKGROUND],
        "pretrained_checkpoint": str(Path(pretrained).resolve()) if pretrained else None,
    }
