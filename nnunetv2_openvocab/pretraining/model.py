"""The trained model and one forward/backward pass of the contrastive objective."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from nnunetv2_openvocab.pretraining.data import ContrastiveBatch
from nnunetv2_openvocab.pretraining.image_encoder import PooledImageEncoder, encode_locked
from nnunetv2_openvocab.pretraining.loss import ClipLoss
from nnunetv2_openvocab.pretraining.text_tower import ContrastiveTextTower


class ContrastiveModel(nn.Module):
    """Everything the optimiser trains: the text tower and, with --unlock-image-encoder, the image encoder.

    forward(images, reports, captions) -> (image (b, D), report (b, D), caption (K, b, D) or None) features.
    `images` are embeddings (b, D) unless an image encoder is part of the model, then volumes.
    """

    def __init__(self, text_tower: ContrastiveTextTower, image_encoder: Optional[PooledImageEncoder] = None):
        super().__init__()
        self.text_tower = text_tower
        self.image_encoder = image_encoder

    def forward(self, images: torch.Tensor, reports: list[str], captions: Optional[list[list[str]]]):
        image_features = images if self.image_encoder is None else self.image_encoder(images)
        report_features = self.text_tower(reports)
        caption_features = None
        if captions:
            flat = [caption for slot in captions for caption in slot]
            # (K * b, D) -> (K, b, D): slot k holds caption k of every image
            caption_features = self.text_tower(flat).view(len(captions), len(reports), -1)
        return image_features, report_features, caption_features


def forward_backward(model: nn.Module, loss_fn: ClipLoss, batch: ContrastiveBatch, device: torch.device,
                     locked_image_encoder: Optional[nn.Module] = None) -> dict[str, float]:
    """Losses of one (local) batch, back-propagated; returns {"loss": total, <named losses>} as floats.

    `locked_image_encoder` turns volumes into embeddings first (on-the-fly encoding without a cache).
    """
    images = batch.images.to(device)
    if locked_image_encoder is not None:
        images = encode_locked(locked_image_encoder, images, device)
    losses = loss_fn(*model(images, batch.reports, batch.captions))
    total = torch.stack(list(losses.values())).sum()
    total.backward()
    return {"loss": total.item(), **{name: value.item() for name, value in losses.items()}}
