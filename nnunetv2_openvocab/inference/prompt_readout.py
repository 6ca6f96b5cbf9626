"""What the sliding window blends, and how one prompt's logits are read from it afterwards.

The text head scores a voxel as ``<q_p, F> + b_p``: decoder features F (C channels) against each prompt's
query q_p and bias b_p. With the MLP connector the queries depend on the prompt only, and Gaussian blending
is linear, so blending the C feature channels and applying the queries afterwards gives exactly the
blended logits (``FeatureReadout``): the sliding window's cost no longer grows with the number of prompts.
The cross-attention connector builds its queries from each tile's image tokens, and each fold of an ensemble
has its own queries, so there the logits are blended per prompt (``LogitReadout``, float16 sums as in
nnU-Net). ``choose_readout`` takes the smaller buffer where both are exact.

``strongest_logits_at`` gives the highest of several queries' logits at chosen voxels only (a prompt's
foreground, where grounding lets rival labels claim voxels), in chunks: its cost follows the voxels asked for,
not the volume.
"""
from __future__ import annotations

from typing import Sequence, Tuple, Union

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

    def strongest_logits_at(self, volume: BlendedVolume, indices: Sequence[int],
                            voxels: Tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.cat([volume.values_at(indices, chunk).amax(0) for chunk in voxel_chunks(voxels)])


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

    def strongest_logits_at(self, volume: BlendedVolume, indices: Sequence[int],
                            voxels: Tuple[torch.Tensor, ...]) -> torch.Tensor:
        queries, biases = self.queries[list(indices)], self.biases[list(indices)]
        channels = range(self.num_channels)
        return torch.cat([(queries @ volume.values_at(channels, chunk) + biases[:, None]).amax(0)
                          for chunk in voxel_chunks(voxels)])


VOXEL_CHUNK = 1 << 18  # voxels gathered at once: C x 2^18 float32 = 32 MB for 32 feature channels


def voxel_chunks(voxels: Tuple[torch.Tensor, ...]):
    for start in range(0, len(voxels[0]), VOXEL_CHUNK):
        yield tuple(index[start:start + VOXEL_CHUNK] for index in voxels)


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


def cede_to_rivals(logits: torch.Tensor, readout: Union[LogitReadout, FeatureReadout], volume: BlendedVolume,
                   rival_indices: Sequence[int]) -> torch.Tensor:
    """Lower, in place, the query's foreground logits l by its strongest rival's s: min(l, l - s), so a voxel a
    rival scores higher becomes background (as nnU-Net's argmax would decide between them); voxels already
    background keep their own logits."""
    voxels = (logits > 0).nonzero(as_tuple=True)
    if len(voxels[0]):
        own = logits[voxels]
        logits[voxels] = torch.minimum(own, own - readout.strongest_logits_at(volume, rival_indices, voxels))
    return logits
