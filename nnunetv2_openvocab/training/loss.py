"""BCE + soft Dice per prompt channel and per sample, with masked back-propagation.

Shapes: logits and targets (B, P, *spatial); ``annotated`` (B, P) bool says which (sample, prompt) pairs
carry a label. Unannotated pairs are *dropped* (boolean indexing), not multiplied by zero, so their
gradient is exactly zero and a NaN there could never leak into the loss (Universal Model, masked
back-propagation). The Dice sums run over the spatial axes only, so every (sample, prompt) pair gets its
own Dice; the Universal Model's public code reduced over the wrong axes.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn


def soft_dice_per_channel(probabilities: torch.Tensor, targets: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """(B, P, *S) -> (B, P) soft Dice coefficient."""
    spatial_axes = tuple(range(2, probabilities.ndim))
    intersection = (probabilities * targets).sum(spatial_axes)
    denominator = probabilities.sum(spatial_axes) + targets.sum(spatial_axes)
    return (2 * intersection + smooth) / (denominator + smooth)


class PromptSegmentationLoss(nn.Module):
    """Mean over annotated (sample, prompt) pairs of BCE + (1 - soft Dice)."""

    def __init__(self, bce_weight: float = 1.0, dice_weight: float = 1.0, smooth: float = 1e-5):
        super().__init__()
        self.bce_weight, self.dice_weight, self.smooth = bce_weight, dice_weight, smooth

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, annotated: torch.Tensor) -> torch.Tensor:
        if not annotated.any():
            return logits.sum() * 0.0  # keeps the graph; nothing annotated in this batch
        if annotated.all():  # the common fully annotated batch: views, no copies
            logits, targets = logits.flatten(0, 1), targets.flatten(0, 1)
        else:
            logits, targets = logits[annotated], targets[annotated]  # (K, *S)
        targets = targets.to(logits.dtype)
        bce = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        bce = bce.flatten(1).mean(1)
        dice = soft_dice_per_channel(torch.sigmoid(logits)[:, None], targets[:, None], self.smooth)[:, 0]
        return (self.bce_weight * bce + self.dice_weight * (1 - dice)).mean()


class DeepSupervisionPromptLoss(nn.Module):
    """nnU-Net's deep-supervision weighting (1/2^i, lowest scale off, normalised) over per-scale losses."""

    def __init__(self, loss: nn.Module, num_scales: int):
        super().__init__()
        weights = torch.tensor([1 / (2 ** i) for i in range(num_scales)])
        if num_scales > 1:
            weights[-1] = 0  # as nnU-Net: the coarsest output is too coarse to help
        self.loss = loss
        self.weights: Sequence[float] = (weights / weights.sum()).tolist()

    def forward(self, logits: List[torch.Tensor], targets: List[torch.Tensor], annotated: torch.Tensor) -> torch.Tensor:
        return sum(w * self.loss(l, t, annotated) for w, l, t in zip(self.weights, logits, targets) if w != 0)
