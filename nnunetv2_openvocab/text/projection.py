"""MLP that projects sentence embeddings into the image-embedding space (trained by contrastive pretraining).

It ships inside the aligned checkpoint (format: nnunetv2_openvocab/aligned_checkpoint.py).
"""
from __future__ import annotations

import torch
from torch import nn

from nnunetv2_openvocab.aligned_checkpoint import AlignedCheckpoint


class TextProjection(nn.Module):
    """Linear -> GELU -> Linear; (N, in_dim) -> (N, out_dim)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.in_dim, self.hidden_dim, self.out_dim = in_dim, hidden_dim, out_dim
        self.layers = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, out_dim))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.layers(embeddings)

    def config(self) -> dict:
        return {"in_dim": self.in_dim, "hidden_dim": self.hidden_dim, "out_dim": self.out_dim}


def load_projection(checkpoint: AlignedCheckpoint) -> TextProjection:
    from nnunetv2_openvocab.safe_loading import read_safetensors

    projection = TextProjection(**checkpoint.projection_dims)
    projection.load_state_dict(read_safetensors(checkpoint.projection_weights))
    return projection
