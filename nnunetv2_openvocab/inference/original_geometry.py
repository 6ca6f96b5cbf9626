"""One prompt's network-resolution logits -> a binary mask in the input's original voxel grid.

nnU-Net's preprocessing transposes, crops to the non-zero box and resamples; this undoes it in reverse order
(resample -> threshold -> un-crop -> transpose back), one prompt at a time, so memory holds one original-size
uint8 mask instead of nnU-Net's float copy of every class.

Resampling follows the plans' ``resampling_fn_probabilities``. For nnU-Net's default (``resample_data_or_seg_to_shape``
with linear interpolation, nearest along the low-resolution axis when it resamples that axis separately),
``SeparableThresholdResampler`` gives the same mask much faster: linear and nearest interpolation only mix
neighbouring values, so an output voxel can exceed the threshold only next to a positive input voxel, and
only the box around those is interpolated (float32, same sampling grid as scikit-image's ``resize``: input
coordinate ``(o + 0.5) * in / out - 0.5``, clamped at the edges). Every other resampling function is called
as the plans say, on one prompt.
"""
from __future__ import annotations

from functools import partial
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from acvl_utils.cropping_and_padding.bounding_boxes import bounding_box_to_slice
from nnunetv2.preprocessing.resampling.default_resampling import (determine_do_sep_z_and_axis,
                                                                  resample_data_or_seg_to_shape)
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager


def _axis_stencil(in_size: int, out_size: int, order: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every output index along one axis: lower and upper input index and the upper weight."""
    if in_size == out_size:
        identity = np.arange(out_size)
        return identity, identity, np.zeros(out_size, dtype=np.float32)
    coordinates = np.clip((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0, in_size - 1)
    if order == 0:
        nearest = np.floor(coordinates + 0.5).astype(np.int64)
        return nearest, nearest, np.zeros(out_size, dtype=np.float32)
    lower = np.floor(coordinates).astype(np.int64)
    upper = np.minimum(lower + 1, in_size - 1)
    return lower, upper, (coordinates - lower).astype(np.float32)


class SeparableThresholdResampler:
    """``logits > 0`` after linear (order 1) or nearest (order 0) interpolation per axis; ``fill_probabilities``
    writes the sigmoid of the same interpolated logits on the whole grid."""

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], orders: Sequence[int]):
        self.out_shape = tuple(int(s) for s in out_shape)
        self.stencils = [_axis_stencil(int(i), int(o), order) for i, o, order in zip(in_shape, out_shape, orders)]

    def fill(self, logits: torch.Tensor, out: np.ndarray) -> None:
        """Write the (*out_shape) mask of (*in_shape) ``logits`` into ``out`` (zeros; bool or uint8)."""
        positive = torch.nonzero(logits > 0)
        if positive.numel() == 0:
            return
        low, high = positive.min(0).values.tolist(), positive.max(0).values.tolist()
        out_box, axis_stencils = [], []
        for (lower, upper, weight), first, last in zip(self.stencils, low, high):
            touched = np.flatnonzero((upper >= first) & (lower <= last))  # outputs whose stencil meets a positive
            start, stop = int(touched[0]), int(touched[-1]) + 1
            out_box.append(slice(start, stop))
            axis_stencils.append((lower[start:stop], upper[start:stop], weight[start:stop]))
        target = torch.from_numpy(out[tuple(out_box)].view(np.bool_))
        for index, plane in self._planes(logits, axis_stencils):
            torch.gt(plane, 0, out=target[index])

    def fill_probabilities(self, logits: torch.Tensor, out: np.ndarray) -> None:
        """Write the (*out_shape) float16 sigmoid of the interpolated ``logits`` into ``out``, plane by plane."""
        target = torch.from_numpy(out)
        for index, plane in self._planes(logits, self.stencils):
            target[index] = torch.sigmoid_(plane)

    @staticmethod
    def _planes(logits: torch.Tensor, axis_stencils: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]]):
        """Yield (index, float32 plane) of the interpolated ``logits`` along the first axis of ``axis_stencils``.

        Trailing axes as whole-array gathers; the first axis, whose output is the largest, one output plane at a
        time into one reused buffer: no full-size float buffer, no full-size gathers."""
        source_start = [int(lower.min()) for lower, _, _ in axis_stencils]
        values = logits[tuple(slice(s, int(upper.max()) + 1) for s, (_, upper, _) in zip(source_start, axis_stencils))]
        values = values.float()
        for axis in range(values.ndim - 1, 0, -1):
            lower, upper, weight = axis_stencils[axis]
            below = values.index_select(axis, torch.from_numpy(lower - source_start[axis]).to(values.device))
            above = values.index_select(axis, torch.from_numpy(upper - source_start[axis]).to(values.device))
            weight_t = torch.from_numpy(weight).to(values.device).reshape(-1, *[1] * (values.ndim - 1 - axis))
            values = torch.lerp(below, above, weight_t)
        values = values.cpu()  # the outputs are host memory
        lower, upper, weight = axis_stencils[0]
        plane = torch.empty(values.shape[1:], dtype=values.dtype)
        for index, (below, above, fraction) in enumerate(zip(lower - source_start[0], upper - source_start[0], weight)):
            torch.lerp(values[below], values[above], float(fraction), out=plane)
            yield index, plane

    def __call__(self, logits: torch.Tensor) -> np.ndarray:
        """(*in_shape) float logits -> (*out_shape) bool mask."""
        mask = np.zeros(self.out_shape, dtype=bool)
        self.fill(logits, mask)
        return mask


def _uses_default_resampling(configuration_manager: ConfigurationManager) -> Optional[dict]:
    """The kwargs of the plans' probability resampling if it is nnU-Net's default function, else None."""
    function = configuration_manager.resampling_fn_probabilities
    if isinstance(function, partial) and function.func is resample_data_or_seg_to_shape:
        return dict(function.keywords)
    return None


class OriginalGeometry:
    """Undo one case's preprocessing for one prompt at a time (properties as returned by the preprocessor)."""

    def __init__(self, properties: dict, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                 network_shape: Sequence[int]):
        self.properties = properties
        self.transpose_backward = plans_manager.transpose_backward
        self.cropped_shape = tuple(int(s) for s in properties["shape_after_cropping_and_before_resampling"])
        self.network_shape = tuple(int(s) for s in network_shape)
        original_spacing = [properties["spacing"][i] for i in plans_manager.transpose_forward]
        network_spacing = list(configuration_manager.spacing)
        if len(network_spacing) < len(original_spacing):  # 2D configurations keep the slice spacing
            network_spacing = [original_spacing[0], *network_spacing]
        self.spacings = (network_spacing, original_spacing)
        self.generic_resampling = configuration_manager.resampling_fn_probabilities
        self.fast_resampler = self._fast_resampler(_uses_default_resampling(configuration_manager))

    def _fast_resampler(self, kwargs: Optional[dict]) -> Optional[SeparableThresholdResampler]:
        if kwargs is None or kwargs.get("is_seg") or kwargs.get("order", 3) != 1:
            return None
        separate_z, axis = determine_do_sep_z_and_axis(kwargs.get("force_separate_z", False), *self.spacings)
        orders: List[int] = [1] * len(self.cropped_shape)
        if separate_z:
            if kwargs.get("order_z", 0) not in (0, 1):
                return None
            orders[axis] = kwargs.get("order_z", 0)
        return SeparableThresholdResampler(self.network_shape, self.cropped_shape, orders)

    def mask(self, logits: torch.Tensor) -> np.ndarray:
        """(*network_shape) logits of one prompt -> uint8 mask in the original array layout (sigmoid > 0.5)."""
        full = np.zeros(self.properties["shape_before_cropping"], dtype=np.uint8)
        cropped = full[bounding_box_to_slice(self.properties["bbox_used_for_cropping"])]  # a view: filled in place
        if self.fast_resampler is not None:
            self.fast_resampler.fill(logits, cropped)
        else:
            resampled = self.generic_resampling(logits[None].float().cpu().numpy(), self.cropped_shape, *self.spacings)
            cropped[...] = np.asarray(resampled[0]) > 0
        return full.transpose(self.transpose_backward)

    def probabilities(self, logits: torch.Tensor) -> np.ndarray:
        """(*network_shape) logits of one prompt -> float16 sigmoid probabilities in the original array layout
        (0 outside nnU-Net's crop box, which holds no foreground); one prompt at a time, never a prompts x volume
        buffer."""
        full = np.zeros(self.properties["shape_before_cropping"], dtype=np.float16)
        cropped = full[bounding_box_to_slice(self.properties["bbox_used_for_cropping"])]
        if self.fast_resampler is not None:
            self.fast_resampler.fill_probabilities(logits, cropped)
        else:
            resampled = self.generic_resampling(logits[None].float().cpu().numpy(), self.cropped_shape, *self.spacings)
            cropped[...] = torch.sigmoid(torch.from_numpy(np.asarray(resampled[0], dtype=np.float32))).numpy()
        return full.transpose(self.transpose_backward)
