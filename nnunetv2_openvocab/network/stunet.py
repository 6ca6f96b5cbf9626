"""STU-Net (Huang et al. 2023, arXiv:2304.06716) as an nnU-Net v2 network.

STU-Net is a residual U-Net whose sizes S, B, L and H differ only in depth (residual blocks per
stage) and width (channels per stage). This module rebuilds it from small DNA-style blocks
(stunet_blocks.py) while keeping the parameter names of the released
checkpoints exactly:

    conv_blocks_context.{stage}.{block}.{conv1,norm1,conv2,norm2,conv3}.*   encoder
    upsample_layers.{u}.conv.*                                              decoder upsampling
    conv_blocks_localization.{u}.{block}.*                                  decoder stages
    seg_outputs.{u}.*                                                       1x1x1 segmentation convs

where decoder index u = 0 is the LOWEST resolution (that is STU-Net's order; forward() still
returns deep-supervision outputs highest resolution first, as nnU-Net expects).

nnU-Net builds it from plans with a dotted `network_class_name`
(`nnunetv2_openvocab.network.stunet.STUNet`) and JSON `arch_kwargs`; `stunet_arch_kwargs`
gives the published size presets.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

from nnunetv2_openvocab.network.stunet_blocks import (ConvOps, NearestUpsampleProjection, ResidualStage, downsampled,
                                                      voxel_count)

# Published sizes: blocks per stage and the width of stage 0. Every size widens as
# base * (1, 2, 4, 8, 16, 16) over its six stages.
STUNET_PRESETS: dict[str, tuple[int, int]] = {
    "S": (1, 16),
    "B": (1, 32),
    "L": (2, 64),
    "H": (3, 96),
}
STAGE_WIDTH_MULTIPLIERS = (1, 2, 4, 8, 16, 16)


def stunet_arch_kwargs(size: str, base_width: int | None = None) -> dict:
    """JSON-serialisable `depth` and `dims` of a published STU-Net size, for nnU-Net plans `arch_kwargs`.

    `base_width` overrides the width of stage 0 (the others scale with it), e.g. 8 for tiny CPU
    networks. Pooling and kernel sizes are not included: they come from the planner's topology
    (STUNet's defaults are the paper's 5 x [2, 2, 2] pooling and [3, 3, 3] kernels).
    """
    if size not in STUNET_PRESETS:
        raise ValueError(f"Unknown STU-Net size {size!r}; expected one of {sorted(STUNET_PRESETS)}.")
    blocks_per_stage, published_base_width = STUNET_PRESETS[size]
    width = published_base_width if base_width is None else base_width
    return {
        "depth": [blocks_per_stage] * len(STAGE_WIDTH_MULTIPLIERS),
        "dims": [width * multiplier for multiplier in STAGE_WIDTH_MULTIPLIERS],
    }


@dataclass
class DecoderSwitches:
    """Run-time decoder settings where nnU-Net looks for them (`network.decoder.deep_supervision`).

    A plain object, not an nn.Module: the decoder's modules stay top-level attributes of STUNet so
    that state_dict names match the released STU-Net checkpoints.
    """

    deep_supervision: bool


def _resolve_pooling(pool_op_kernel_sizes: Sequence[Sequence[int]] | None,
                     strides: Sequence[Sequence[int]] | None) -> list[list[int]]:
    """STU-Net's per-downsampling `pool_op_kernel_sizes`, also accepting nnU-Net's per-stage `strides`.

    nnU-Net v2's trainer reads the deep-supervision scales from `arch_kwargs['strides']` (one entry
    per stage, the first all ones), so plans carry `strides`; either form, or both if they agree, works.
    """
    if strides is not None:
        if any(step != 1 for step in strides[0]):
            raise ValueError(f"STUNet's first stage does not downsample: strides[0] must be all ones, got "
                             f"{list(strides[0])}. Fix arch_kwargs['strides'] in the plans.")
        from_strides = [list(stride) for stride in strides[1:]]
        if pool_op_kernel_sizes is not None and [list(p) for p in pool_op_kernel_sizes] != from_strides:
            raise ValueError(f"arch_kwargs 'strides' {[list(s) for s in strides]} and 'pool_op_kernel_sizes' "
                             f"{[list(p) for p in pool_op_kernel_sizes]} disagree; give one of them, or make "
                             f"pool_op_kernel_sizes equal strides[1:].")
        return from_strides
    if pool_op_kernel_sizes is None:
        return [[2, 2, 2]] * 5
    return [list(p) for p in pool_op_kernel_sizes]


class STUNet(nn.Module):
    """STU-Net: a residual U-Net with nearest-neighbour upsampling and deep supervision.

    Args (all JSON-serialisable, so they can sit in nnU-Net plans `arch_kwargs`):
        input_channels, num_classes: image channels in, segmentation classes out.
        depth: residual blocks per stage (6 stages for the published sizes).
        dims: channels per stage, same length as `depth`.
        pool_op_kernel_sizes: downsampling factor between consecutive stages (len(dims) - 1
            entries, anisotropic allowed, e.g. [1, 2, 2]); default 5 x [2, 2, 2].
        conv_kernel_sizes: conv kernel per stage (len(dims) entries); default [3, 3, 3].
        deep_supervision: forward returns one output per decoder stage (highest resolution
            first) instead of only the full-resolution one. nnU-Net toggles it through
            `network.decoder.deep_supervision`.
        strides: nnU-Net's per-stage form of the pooling ([[1, 1, 1], *pool_op_kernel_sizes]),
            accepted because nnU-Net's trainer requires it in the plans.

    Feature API for heads built on top of the decoder (e.g. text queries):
        `encode(x)` -> per-stage encoder features, bottleneck last;
        `decode_features(skips)` -> decoder features before the 1x1x1 segmentation convs, highest
            resolution first, one per deep-supervision output;
        `feature_channels` -> their channel counts, same order.
    `forward(x)` is exactly the segmentation convs applied to `decode_features(encode(x))`.
    """

    def __init__(self, input_channels: int, num_classes: int,
                 depth: Sequence[int] = (1, 1, 1, 1, 1, 1),
                 dims: Sequence[int] = (32, 64, 128, 256, 512, 512),
                 pool_op_kernel_sizes: Sequence[Sequence[int]] | None = None,
                 conv_kernel_sizes: Sequence[Sequence[int]] | None = None,
                 deep_supervision: bool = True,
                 strides: Sequence[Sequence[int]] | None = None):
        super().__init__()
        pooling = _resolve_pooling(pool_op_kernel_sizes, strides)
        kernels = [[3, 3, 3]] * len(dims) if conv_kernel_sizes is None else [list(k) for k in conv_kernel_sizes]
        self._check_topology(depth, dims, pooling, kernels)
        ops = ConvOps()
        self.input_channels = input_channels
        self.num_classes = num_classes
        self.dims = list(dims)
        self.pool_op_kernel_sizes = pooling
        self.decoder = DecoderSwitches(deep_supervision)

        stage_inputs = [input_channels, *dims[:-1]]
        stage_strides = [[1] * len(kernels[0]), *pooling]
        self.conv_blocks_context = nn.ModuleList(
            ResidualStage(ops, depth[s], stage_inputs[s], dims[s], kernels[s], stage_strides[s])
            for s in range(len(dims)))
        # decoder index u builds stage t = n_stages - 2 - u, i.e. u = 0 is the lowest resolution
        decoder_targets = list(range(len(dims) - 2, -1, -1))
        self.upsample_layers = nn.ModuleList(
            NearestUpsampleProjection(ops, dims[t + 1], dims[t]) for t in decoder_targets)
        self.conv_blocks_localization = nn.ModuleList(
            ResidualStage(ops, depth[t], 2 * dims[t], dims[t], kernels[t], [1] * len(kernels[t]))
            for t in decoder_targets)
        self.seg_outputs = nn.ModuleList(ops.conv_op(dims[t], num_classes, 1) for t in decoder_targets)

    @staticmethod
    def _check_topology(depth, dims, pooling, kernels) -> None:
        n_stages = len(dims)
        if n_stages < 2 or len(depth) != n_stages or len(kernels) != n_stages or len(pooling) != n_stages - 1:
            raise ValueError(
                f"STUNet needs len(depth) == len(dims) == len(conv_kernel_sizes) == len(pool_op_kernel_sizes) + 1 "
                f">= 2; got depth {list(depth)}, dims {list(dims)}, {len(kernels)} conv kernel sizes and "
                f"{len(pooling)} pool kernel sizes. Fix arch_kwargs in the plans.")
        if any(len(size) != 3 for size in [*kernels, *pooling]):
            raise ValueError(f"STUNet is 3D: every conv/pool kernel size needs 3 entries; got conv "
                             f"{kernels} and pool {pooling}.")

    @property
    def feature_channels(self) -> list[int]:
        """Channels of each `decode_features` map, highest resolution first."""
        return self.dims[:-1]

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features of every stage, highest resolution first and bottleneck last."""
        skips = []
        for stage in self.conv_blocks_context:
            x = stage(x)
            skips.append(x)
        return skips

    def decode_features(self, skips: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Decoder features before the segmentation convs, highest resolution first.

        One map per deep-supervision output of `forward`, with `feature_channels` channels each
        and the spatial size of the matching encoder stage.
        """
        x = skips[-1]
        features = []
        for u, (upsample, stage) in enumerate(zip(self.upsample_layers, self.conv_blocks_localization)):
            skip = skips[-(u + 2)]
            x = torch.cat((upsample(x, skip.shape[2:]), skip), dim=1)  # (B, 2 * C_t, *size_t)
            x = stage(x)  # (B, 2 * C_t, *size_t) -> (B, C_t, *size_t)
            features.append(x)
        return features[::-1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor] | torch.Tensor:
        """Logits: a list (highest resolution first) with deep supervision, else the full-resolution tensor."""
        features = self.decode_features(self.encode(x))
        if not self.decoder.deep_supervision:
            return self.seg_outputs[-1](features[0])
        # seg_outputs are stored lowest resolution first (STU-Net's checkpoint order)
        return [head(feature) for head, feature in zip(reversed(self.seg_outputs), features)]

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        """Sum of all conv output sizes (channels x voxels) for a patch, as DNA's networks report it.

        nnU-Net's planner compares this against its reference to choose patch and batch size.
        """
        if len(input_size) != len(self.pool_op_kernel_sizes[0]):
            raise ValueError(f"Give the spatial patch size only (x, y, z), without batch/channel axes; "
                             f"got {input_size}.")
        total = np.int64(0)
        stage_sizes = []  # spatial size of each encoder stage's output
        for stage in self.conv_blocks_context:
            total += stage.compute_conv_feature_map_size(input_size)
            input_size = downsampled(input_size, stage[0].stride)
            stage_sizes.append(input_size)
        for u, (upsample, stage) in enumerate(zip(self.upsample_layers, self.conv_blocks_localization)):
            target_size = stage_sizes[-(u + 2)]
            total += upsample.compute_conv_feature_map_size(target_size)
            total += stage.compute_conv_feature_map_size(target_size)
            if self.decoder.deep_supervision or u == len(self.upsample_layers) - 1:
                total += voxel_count(self.num_classes, target_size)
        return total

    @staticmethod
    def initialize(module: nn.Module) -> None:
        """He init for convs (norms keep weight 1, bias 0); use as `network.apply(network.initialize)`."""
        InitWeights_He(1e-2)(module)
