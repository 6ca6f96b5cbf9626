"""MLP that projects sentence embeddings into the image-embedding space (trained by contrastive pretraining).

Aligned checkpoint layout (written by ``nnUNetv2_openvocab_pretrain export``), a folder with:
  aligned.json                  {"format": "nnunetv2_openvocab.aligned/1", "text_encoder": "text_encoder",
                                 "projection": {"in_dim", "hidden_dim", "out_dim", "weights": "text_projection.safetensors"},
                                 "image_encoder": {"weights": "image_encoder.safetensors", "fingerprint": sha256,
                                                   "arch_kwargs": {...STUNet kwargs...}}}
  text_encoder/                 SentenceTransformer.save() folder
  text_projection.safetensors   TextProjection state dict
  image_encoder.safetensors     STUNet encoder (conv_blocks_context.*) state dict
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

ALIGNED_FORMAT = "nnunetv2_openvocab.aligned/1"


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


def read_aligned_manifest(folder: str | Path) -> dict:
    path = Path(folder) / "aligned.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != ALIGNED_FORMAT:
        raise ValueError(f"{path}: field 'format' is {manifest.get('format')!r}, expected {ALIGNED_FORMAT!r}. "
                         f"Re-export the checkpoint with nnUNetv2_openvocab_pretrain export.")
    return manifest


def load_projection(folder: str | Path) -> TextProjection:
    from nnunetv2_openvocab.safe_loading import read_safetensors

    config = read_aligned_manifest(folder)["projection"]
    projection = TextProjection(config["in_dim"], config["hidden_dim"], config["out_dim"])
    projection.load_state_dict(read_safetensors(Path(folder) / config["weights"]))
    return projection
