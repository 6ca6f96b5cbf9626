"""The trained model and one forward/backward pass of the contrastive objective."""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import torch
from torch import nn

from nnunetv2_openvocab.pretraining.data import ContrastiveBatch, RegionSample
from nnunetv2_openvocab.pretraining.image_encoder import PooledImageEncoder, encode_locked, region_features
from nnunetv2_openvocab.pretraining.loss import ClipLoss
from nnunetv2_openvocab.pretraining.memory_options import MemoryOptions
from nnunetv2_openvocab.pretraining.text_tower import ContrastiveTextTower


class ContrastiveModel(nn.Module):
    """Everything the optimiser trains: the text tower and, with --unlock-image-encoder, the image encoder.

    forward(images, reports, captions, regions) -> (image (b, D), report (b, D), caption (K, b, D) or None,
    region (R, D) or None, region caption (R, D) or None) features.
    `images` are embeddings (b, D) unless an image encoder is part of the model, then volumes; `regions`
    (fine-grained alignment, needs the image encoder) holds each volume's region masks and captions.
    """

    def __init__(self, text_tower: ContrastiveTextTower, image_encoder: Optional[PooledImageEncoder] = None):
        super().__init__()
        self.text_tower = text_tower
        self.image_encoder = image_encoder

    def forward(self, images: torch.Tensor, reports: list[str], captions: Optional[list[list[str]]],
                regions: Optional[list[Optional[RegionSample]]] = None):
        region_pairs = None
        if self.image_encoder is None:
            image_features = images
        elif regions is None:
            image_features = self.image_encoder(images)
        else:
            feature_maps = self.image_encoder.feature_map(images)
            image_features = feature_maps.mean(dim=tuple(range(2, feature_maps.ndim)))
            region_pairs = self._region_pairs(feature_maps, regions)
        report_features = self.text_tower(reports)
        caption_features = None
        if captions:
            flat = [caption for slot in captions for caption in slot]
            # (K * b, D) -> (K, b, D): slot k holds caption k of every image
            caption_features = self.text_tower(flat).view(len(captions), len(reports), -1)
        return image_features, report_features, caption_features, *(region_pairs or (None, None))

    def _region_pairs(self, feature_maps: torch.Tensor, regions: list[Optional[RegionSample]]
                      ) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        """(region features (R, D), region caption features (R, D)) over the batch; None if no region is in view."""
        features, texts = [], []
        for feature_map, sample in zip(feature_maps, regions):
            if sample is None:
                continue
            pooled, kept = region_features(feature_map, sample.masks.to(feature_map.device))
            features.append(pooled)
            texts += [caption for caption, keep in zip(sample.captions, kept.tolist()) if keep]
        if not texts:
            return None
        return torch.cat(features), self.text_tower(texts)


def embed(model: nn.Module, batch: ContrastiveBatch, device: torch.device,
          options: MemoryOptions = MemoryOptions()) -> tuple[Optional[torch.Tensor], ...]:
    """The model's five features of `batch` (images: embeddings or volumes), float32 whatever the autocast."""
    with options.autocast(device):
        features = model(batch.images.to(device), batch.reports, batch.captions, batch.regions)
    return tuple(None if feature is None else feature.float() for feature in features)


def forward_backward(model: nn.Module, loss_fn: ClipLoss, batch: ContrastiveBatch, device: torch.device,
                     locked_image_encoder: Optional[nn.Module] = None,
                     options: MemoryOptions = MemoryOptions()) -> dict[str, float]:
    """Losses of one (local) batch, back-propagated; returns {"loss": total, <named losses>} as floats.

    `locked_image_encoder` turns volumes into embeddings first (on-the-fly encoding without a cache).
    """
    if locked_image_encoder is not None:
        batch = replace(batch, images=encode_locked(locked_image_encoder, batch.images, device))
    losses = loss_fn(*embed(model, batch, device, options))
    total = torch.stack(list(losses.values())).sum()
    total.backward()
    return {"loss": total.item(), **{name: value.item() for name, value in losses.items()}}
