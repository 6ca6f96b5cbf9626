"""STU-Net's building blocks, DNA-style (ops passed in as classes plus kwargs): the residual block, a stage of
them, and the nearest-neighbour upsampling projection. Attribute names follow the released checkpoints
(``conv1, norm1, conv2, norm2, conv3``; ``conv``), so STUNet's state dict matches them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class ConvOps:
    """The op classes and kwargs every block is built from (DNA style). STU-Net's are the defaults."""

    conv_op: type[nn.Module] = nn.Conv3d
    norm_op: type[nn.Module] = nn.InstanceNorm3d
    norm_op_kwargs: dict = field(default_factory=lambda: {"eps": 1e-5, "affine": True})
    nonlin: type[nn.Module] = nn.LeakyReLU
    nonlin_kwargs: dict = field(default_factory=lambda: {"negative_slope": 1e-2, "inplace": True})


def voxel_count(channels: int, spatial_size: Sequence[int]) -> np.int64:
    return np.prod([channels, *spatial_size], dtype=np.int64)


def downsampled(spatial_size: Sequence[int], stride: Sequence[int]) -> list[int]:
    return [size // step for size, step in zip(spatial_size, stride)]


class ResidualBlock(nn.Module):
    """STU-Net's BasicResBlock: conv-norm-act, conv-norm, add the (projected) input, act.

    With `project_input` a 1x1 conv (`conv3`, carrying the block's stride) maps the input to the
    output's channels and size; without it the input is added unchanged, which needs equal
    channels and stride 1.
    """

    def __init__(self, ops: ConvOps, input_channels: int, output_channels: int,
                 kernel_size: Sequence[int], stride: Sequence[int], project_input: bool):
        super().__init__()
        if not project_input and (input_channels != output_channels or any(s != 1 for s in stride)):
            raise ValueError("A residual block without input projection needs equal channels and stride 1; "
                             f"got {input_channels}->{output_channels} channels, stride {list(stride)}.")
        padding = [k // 2 for k in kernel_size]
        self.output_channels = output_channels
        self.stride = list(stride)
        self.conv1 = ops.conv_op(input_channels, output_channels, kernel_size, stride=stride, padding=padding)
        self.norm1 = ops.norm_op(output_channels, **ops.norm_op_kwargs)
        self.act1 = ops.nonlin(**ops.nonlin_kwargs)
        self.conv2 = ops.conv_op(output_channels, output_channels, kernel_size, padding=padding)
        self.norm2 = ops.norm_op(output_channels, **ops.norm_op_kwargs)
        self.act2 = ops.nonlin(**ops.nonlin_kwargs)
        self.conv3 = ops.conv_op(input_channels, output_channels, 1, stride=stride) if project_input else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        shortcut = x if self.conv3 is None else self.conv3(x)
        # in-place add is safe: instance norm's backward does not need its output
        y += shortcut
        return self.act2(y)

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        """Voxels (channels x space) of every conv output, the measure nnU-Net's planner sizes patches by."""
        convs = 2 if self.conv3 is None else 3
        return convs * voxel_count(self.output_channels, downsampled(input_size, self.stride))


class ResidualStage(nn.Sequential):
    """`n_blocks` residual blocks at one resolution; the first projects its input and applies the stride."""

    def __init__(self, ops: ConvOps, n_blocks: int, input_channels: int, output_channels: int,
                 kernel_size: Sequence[int], stride: Sequence[int]):
        if n_blocks < 1:
            raise ValueError(f"Every STU-Net stage needs at least one block; got depth {n_blocks}.")
        no_stride = [1] * len(stride)
        super().__init__(
            ResidualBlock(ops, input_channels, output_channels, kernel_size, stride, project_input=True),
            *[ResidualBlock(ops, output_channels, output_channels, kernel_size, no_stride, project_input=False)
              for _ in range(n_blocks - 1)],
        )

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        total = np.int64(0)
        for block in self:
            total += block.compute_conv_feature_map_size(input_size)
            input_size = downsampled(input_size, block.stride)
        return total


class NearestUpsampleProjection(nn.Module):
    """STU-Net's decoder upsampling: nearest-neighbour upsampling and a 1x1 conv to the skip's channels.

    The 1x1 conv runs BEFORE upsampling: both are per-voxel linear maps, so the result equals
    STU-Net's upsample-then-conv while the conv touches up to 8x fewer voxels.
    """

    def __init__(self, ops: ConvOps, input_channels: int, output_channels: int):
        super().__init__()
        self.output_channels = output_channels
        self.conv = ops.conv_op(input_channels, output_channels, 1)

    def forward(self, x: torch.Tensor, output_size: Sequence[int]) -> torch.Tensor:
        # sizing by the skip (not by a scale factor) keeps odd input sizes working
        return F.interpolate(self.conv(x), size=list(output_size), mode="nearest")

    def compute_conv_feature_map_size(self, output_size: Sequence[int]) -> np.int64:
        return voxel_count(self.output_channels, output_size)
