"""Text-query head: prompt embeddings -> per-scale queries -> per-voxel logits.

For every supervised scale s with decoder features F_s (B, C_s, *spatial), a prompt with query q_s (C_s,)
and bias b_s gets the logits ``<q_s, F_s[:, :, voxel]> + b_s`` (OpenVocabCT III-C; the sigmoid per prompt is
applied by the loss / predictor). The connector turns an embedding into (q_s, b_s) for all scales at once:
  * ``MLPConnector`` (default, the paper's best): embedding -> MLP -> one linear head per scale;
  * ``CrossAttentionConnector`` (ablation): the prompt attends to pooled bottleneck image tokens first.
The backbone runs once per image however many prompts there are; only this cheap contraction is per prompt.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn


FOREGROUND_PRIOR_LOGIT = -2.2  # log(0.1 / 0.9)


class MLPConnector(nn.Module):
    """(B, P, E) embeddings -> per scale: queries (B, P, C_s) and biases (B, P)."""

    def __init__(self, embedding_dim: int, feature_channels: Sequence[int], hidden_dim: int = 256):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(embedding_dim, hidden_dim), nn.GELU(),
                                   nn.Linear(hidden_dim, hidden_dim), nn.GELU())
        # +1 output per scale: the prompt's bias
        self.scale_heads = nn.ModuleList(nn.Linear(hidden_dim, c + 1) for c in feature_channels)
        for head in self.scale_heads:
            # start every prompt at a 10% foreground prior: most voxels are negatives, yet small structures still
            # get a usable gradient (a 1% prior left a thin aorta unlearnt in CPU-length training)
            nn.init.constant_(head.bias[-1:], FOREGROUND_PRIOR_LOGIT)

    def forward(self, embeddings: torch.Tensor, image_tokens: Optional[torch.Tensor] = None):
        hidden = self.trunk(embeddings)
        outputs = [head(hidden) for head in self.scale_heads]
        return [(o[..., :-1], o[..., -1]) for o in outputs]


class CrossAttentionConnector(nn.Module):
    """Prompt embeddings attend to the image's bottleneck tokens, then an MLP connector maps them to queries."""

    def __init__(self, embedding_dim: int, feature_channels: Sequence[int], bottleneck_channels: int,
                 hidden_dim: int = 256, num_heads: int = 4):
        super().__init__()
        self.query_in = nn.Linear(embedding_dim, hidden_dim)
        self.tokens_in = nn.Linear(bottleneck_channels, hidden_dim)
        self.attention = nn.MultiheadAttention(hidden_dim, num_heads, batch_first=True)
        self.norm = nn.LayerNorm(hidden_dim)
        self.mlp = MLPConnector(hidden_dim, feature_channels, hidden_dim)

    def forward(self, embeddings: torch.Tensor, image_tokens: Optional[torch.Tensor] = None):
        if image_tokens is None:
            raise ValueError("CrossAttentionConnector needs the bottleneck image tokens.")
        queries = self.query_in(embeddings)  # (B, P, H)
        tokens = self.tokens_in(image_tokens)  # (B, T, H)
        attended, _ = self.attention(queries, tokens, tokens, need_weights=False)
        return self.mlp(self.norm(queries + attended))


CONNECTORS = {"mlp": MLPConnector, "cross_attention": CrossAttentionConnector}


def build_connector(kind: str, embedding_dim: int, feature_channels: Sequence[int], bottleneck_channels: int,
                    **kwargs) -> nn.Module:
    if kind not in CONNECTORS:
        raise ValueError(f"Unknown connector {kind!r}; choose one of {sorted(CONNECTORS)}.")
    if kind == "cross_attention":
        return CrossAttentionConnector(embedding_dim, feature_channels, bottleneck_channels, **kwargs)
    return MLPConnector(embedding_dim, feature_channels, **kwargs)


def pooled_bottleneck_tokens(bottleneck: torch.Tensor, grid: int = 4) -> torch.Tensor:
    """(B, C, *spatial) -> (B, grid**3, C): a coarse token grid for cross-attention."""
    pooled = nn.functional.adaptive_avg_pool3d(bottleneck, grid)
    return pooled.flatten(2).transpose(1, 2)


def apply_queries(features: torch.Tensor, queries: torch.Tensor, biases: torch.Tensor) -> torch.Tensor:
    """features (B, C, *S), queries (B, P, C), biases (B, P) -> logits (B, P, *S)."""
    batch, channels = features.shape[:2]
    spatial = features.shape[2:]
    # the bias enters the matrix product: no second pass over the (B, P, prod(S)) logits
    logits = torch.baddbmm(biases.unsqueeze(-1), queries, features.reshape(batch, channels, -1))
    return logits.reshape(batch, queries.shape[1], *spatial)


class TextQueryHead(nn.Module):
    """Connector + the embeddings of the training prompts (used when no prompts are given).

    ``get_extra_state`` carries what inference needs besides weights (training prompts, text encoder id and
    fingerprint, connector configuration), so it travels inside every nnU-Net checkpoint's state dict.
    """

    def __init__(self, connector: nn.Module, num_default_prompts: int, embedding_dim: int):
        super().__init__()
        self.connector = connector
        self.register_buffer("default_embeddings", torch.zeros(num_default_prompts, embedding_dim))
        self.metadata: dict = {}

    def get_extra_state(self) -> dict:
        return self.metadata

    def set_extra_state(self, state: dict) -> None:
        self.metadata = dict(state)

    def forward(self, features_per_scale: List[torch.Tensor], bottleneck: torch.Tensor,
                prompt_embeddings: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
        """features: per scale (B, C_s, *S_s); embeddings (P, E) or (B, P, E) -> per scale logits (B, P, *S_s)."""
        embeddings = self.default_embeddings if prompt_embeddings is None else prompt_embeddings
        if embeddings.ndim == 2:
            embeddings = embeddings.unsqueeze(0).expand(bottleneck.shape[0], -1, -1)  # (P, E) -> (B, P, E)
        tokens = pooled_bottleneck_tokens(bottleneck) if isinstance(self.connector, CrossAttentionConnector) else None
        connector_output = self.connector(embeddings.to(bottleneck.dtype), tokens)
        return [apply_queries(f, q, b) for f, (q, b) in zip(features_per_scale, connector_output)]
