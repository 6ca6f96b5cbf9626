"""Load a pretrained image encoder into an OpenVocabSTUNet: an aligned checkpoint or an nnU-Net STUNet checkpoint."""
from __future__ import annotations

from pathlib import Path

from nnunetv2_openvocab.aligned_checkpoint import is_aligned_checkpoint, read_aligned_checkpoint
from nnunetv2_openvocab.network.checkpoint_loading import (LoadReport, load_encoder_weights, load_pretrained_stunet,
                                                           read_checkpoint_state_dict)


def load_pretrained_backbone(network, checkpoint: str | Path) -> LoadReport:
    """Aligned checkpoint folder -> its image encoder only; nnU-Net checkpoint -> encoder and decoder."""
    checkpoint = Path(checkpoint)
    if is_aligned_checkpoint(checkpoint):
        weights = read_aligned_checkpoint(checkpoint).image_encoder_weights
        return load_encoder_weights(network, read_checkpoint_state_dict(weights), source=str(weights))
    if not checkpoint.is_file():
        raise FileNotFoundError(f"Pretrained checkpoint {checkpoint} not found (plans field "
                                f"openvocab.pretrained_checkpoint). Re-plan with --pretrained PATH or fix the path.")
    return load_pretrained_stunet(network, checkpoint)
