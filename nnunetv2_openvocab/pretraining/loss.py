"""Contrastive losses: CLIP (paper eq. 2) and multi-granularity CLIP, MGCL (eqs. 3 to 5).

Both are symmetric InfoNCE over cosine similarities scaled by one learnable logit scale (1 / temperature,
initialised at 1/0.07, clamped at 100 as in CLIP). Negatives span the global batch: every process
gathers all features, but only its own shard carries gradient (`gather_features`) and computes the
same global loss, so the true gradient is the SUM of the processes' gradients (not DDP's default
mean; see distributed.sum_gradients). The logit scale sees the identical full loss on every process
and therefore needs no reduction; it lives here, outside the DDP-wrapped model, for that reason.

MGCL: for each image i the data loader samples K short captions t_i1..t_iK. Caption slot k forms a
batch of N captions (one per image) and L_MGCL = (1/K) sum_k L_CLIP(images, captions_k); its
text-to-image half is eq. 4 (each caption's positive is its own image, all other images are
negatives) and its image-to-text half makes it bidirectional. The total is L_CLIP(image, report)
+ L_MGCL (eq. 5); with loss "clip" only the first term is used.

Fine-grained alignment (Table VIII row 4) adds "region_loss": symmetric InfoNCE between region features
(the last encoder stage averaged inside each region) and their captions. Region counts differ between
processes, so these pairs are contrasted within each process's batch (no all_gather).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from nnunetv2_openvocab.pretraining.config import TrainConfig


def gather_features(features: torch.Tensor, rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """(b, D) per process -> (world_size * b, D) in rank order; only this process's block keeps its gradient."""
    if world_size == 1:
        return features
    gathered = [torch.empty_like(features) for _ in range(world_size)]
    dist.all_gather(gathered, features.detach().contiguous())
    gathered[rank] = features  # all_gather returns copies without autograd history
    return torch.cat(gathered)


class ClipLoss(nn.Module):
    """Symmetric InfoNCE between images and full reports; returns {"clip_loss": scalar}."""

    def __init__(self, init_logit_scale: float = 1 / 0.07, max_logit_scale: float = 100.0,
                 rank: int = 0, world_size: int = 1):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(init_logit_scale)))
        self.max_logit_scale = max_logit_scale
        self.rank, self.world_size = rank, world_size

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=self.max_logit_scale)

    def gather(self, features: torch.Tensor) -> torch.Tensor:
        return gather_features(F.normalize(features, dim=-1), self.rank, self.world_size)

    def symmetric_infonce(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        """images, texts: (N, D) unit vectors, row i of each a positive pair."""
        logits = self.scale() * images @ texts.T  # (N, N): image i vs text j
        labels = torch.arange(logits.shape[0], device=logits.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2

    def named_losses(self, images: torch.Tensor, report_features: torch.Tensor,
                     caption_features: Optional[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"clip_loss": self.symmetric_infonce(images, self.gather(report_features))}

    def forward(self, image_features: torch.Tensor, report_features: torch.Tensor,
                caption_features: Optional[torch.Tensor] = None, region_features: Optional[torch.Tensor] = None,
                region_caption_features: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """image_features, report_features: (b, D) local; caption_features: (K, b, D) local or None;
        region_features, region_caption_features: (R, D) local pairs or None."""
        losses = self.named_losses(self.gather(image_features), report_features, caption_features)
        if region_features is not None:
            losses["region_loss"] = self.symmetric_infonce(F.normalize(region_features, dim=-1),
                                                           F.normalize(region_caption_features, dim=-1))
        return losses


class MultiGranularityClipLoss(ClipLoss):
    """CLIP on reports plus the mean CLIP over K caption slots; returns {"clip_loss", "mgcl_loss"}."""

    def named_losses(self, images, report_features, caption_features):
        if caption_features is None:
            raise ValueError("MGCL needs caption features of shape (K, b, D); the batch has no captions.")
        losses = super().named_losses(images, report_features, caption_features)
        per_slot = [self.symmetric_infonce(images, self.gather(captions)) for captions in caption_features.unbind(0)]
        losses["mgcl_loss"] = torch.stack(per_slot).mean()
        return losses


def build_loss(config: TrainConfig, rank: int = 0, world_size: int = 1) -> ClipLoss:
    loss_class = {"mgcl": MultiGranularityClipLoss, "clip": ClipLoss}[config.loss]
    return loss_class(config.init_logit_scale, config.max_logit_scale, rank, world_size)
