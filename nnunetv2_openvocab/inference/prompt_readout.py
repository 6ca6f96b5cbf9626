"""What the sliding window blends, and how one prompt's logits are read from it afterwards.

The text head scores a voxel as ``<q_p, F> + b_p``: decoder features F (C channels) against each prompt's
query q_p and bias b_p. With the MLP connector the queries depend on the prompt only, and Gaussian blending
is linear, so blending the C feature channels and applying the queries afterwards gives exactly the
blended logits (``FeatureReadout``): the sliding window's cost no longer grows with the number of prompts.
The cross-attention connector builds its queries from each tile's image tokens, and each fold of an ensemble
has its own queries, so there the logits are blended per prompt (``LogitReadout``, float16 sums as in
nnU-Net). ``choose_readout`` takes the smaller buffer where both are exact.
"""
from __future__ import annotations

from typing import Union

import torch

from nnunetv2_openvocab.inference.sliding_window import BlendedVolume
from nnunetv2_openvocab.network.openvocab_stunet import OpenVocabSTUNet
from nnunetv2_openvocab.network.text_query_head import MLPConnector


class LogitReadout:
    """Blend one logit map per prompt."""

    accumulation_dtype = torch.float16

    def __init__(self, network: OpenVocabSTUNet, embeddings: torch.Tensor):
        self.network, self.embeddings = network, embeddings  # embeddings (P, E) on the network's device

    @property
    def num_channels(self) -> int:
        return self.embeddings.shape[0]

    def tile_function(self, tile: torch.Tensor) -> torch.Tensor:
        return self.network(tile, self.embeddings)[0]  # (1, C_in, *patch) -> (P, *patch)

    def prompt_logits(self, volume: BlendedVolume, index: int) -> torch.Tensor:
        return volume.channel(index)


class FeatureReadout:
    """Blend the C full-resolution decoder features once; each prompt's logits are a weighted channel sum.
    Sums stay float32: a logit near 0 is a difference of larger feature terms, so float16 would blur it."""

    accumulation_dtype = torch.float32

    def __init__(self, network: OpenVocabSTUNet, embeddings: torch.Tensor):
        self.network = network
        with torch.inference_mode():
            # the connector answers for every deep-supervision scale; the full-resolution one comes first
            queries, biases = network.head.connector(embeddings[None].float(), None)[0]  # (1, P, C), (1, P)
        self.queries, self.biases = queries[0].cpu(), biases[0].cpu()

    @property
    def num_channels(self) -> int:
        return self.network.feature_channels[0]

    def tile_function(self, tile: torch.Tensor) -> torch.Tensor:
        return self.network.decode_features(self.network.encode(tile))[0][0]  # (1, C_in, *patch) -> (C, *patch)

    def prompt_logits(self, volume: BlendedVolume, index: int) -> torch.Tensor:
        return volume.weighted_channel_sum(self.queries[index]) + float(self.biases[index])


def choose_readout(network: OpenVocabSTUNet, embeddings: torch.Tensor,
                   num_folds: int = 1) -> Union[LogitReadout, FeatureReadout]:
    """Feature blending when one set of queries serves every tile (MLP connector, one fold) and its float32
    sums are smaller than P float16 logit maps."""
    one_query_set = isinstance(network.head.connector, MLPConnector) and num_folds == 1
    feature_bytes = 4 * network.feature_channels[0]
    logit_bytes = 2 * embeddings.shape[0]
    if one_query_set and feature_bytes < logit_bytes:
        return FeatureReadout(network, embeddings)
    return LogitReadout(network, embeddings)
