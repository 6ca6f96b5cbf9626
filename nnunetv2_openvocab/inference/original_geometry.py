"""One prompt's network-resolution logits -> a binary mask in the input's original voxel grid.

nnU-Net's preprocessing transposes, crops to the non-zero box and resamples; this undoes it in reverse order
(resample -> threshold -> un-crop -> transpose back), one prompt at a time, so memory holds one original-size
uint8 mask instead of nnU-Net's float copy of every class.

Resampling follows the plans' ``resampling_fn_probabilities``. For nnU-Net's default (``resample_data_or_seg_to_shape``
with linear interpolation, nearest along the low-resolution axis when it resamples that axis separately),
``SeparableThresholdResampler`` gives the same mask much faster: linear and nearest interpolation only mix
neighbouring values, so an output voxel can exceed the threshold only next to a positive input voxel, and
only the boxes around groups of those are interpolated (float32, same sampling grid as scikit-image's ``resize``:
input coordinate ``(o + 0.5) * in / out - 0.5``, clamped at the edges). Positives far apart get separate boxes
(``positive_boxes``): one box around a few scattered voxels would span the volume, and an unlearnt prompt's
stray voxels made that the main per-prompt cost at 1 mm. Every other resampling function is called as the plans
say, on one prompt.
"""
from __future__ import annotations

import mmap
from functools import partial
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy import ndimage
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

    def fill(self, logits: torch.Tensor, out: np.ndarray) -> int:
        """Write the (*out_shape) mask of (*in_shape) ``logits`` into ``out`` (zeros; bool or uint8) and return its
        foreground count. Output voxels outside the boxes are neither written nor read, so a lazily zeroed ``out``
        (``lazily_zeroed_uint8``) maps only the pages near the foreground."""
        return sum(self._fill_box(logits, out, low, high)
                   for low, high in positive_boxes((logits > 0).cpu().numpy()))

    def _fill_box(self, logits: torch.Tensor, out: np.ndarray, low: Sequence[int], high: Sequence[int]) -> int:
        """Write the mask at every output voxel whose stencil meets the input box [low, high] (inclusive), exact
        there since the stencils read ``logits`` itself; return the foreground count written. Boxes at least two
        voxels apart along some axis (``positive_boxes``) touch disjoint outputs, so the counts add up."""
        out_box, axis_stencils = [], []
        for (lower, upper, weight), first, last in zip(self.stencils, low, high):
            touched = np.flatnonzero((upper >= first) & (lower <= last))  # outputs whose stencil meets a positive
            start, stop = int(touched[0]), int(touched[-1]) + 1
            out_box.append(slice(start, stop))
            axis_stencils.append((lower[start:stop], upper[start:stop], weight[start:stop]))
        target = torch.from_numpy(out[tuple(out_box)].view(np.bool_))
        for index, plane in self._planes(logits, axis_stencils):
            torch.gt(plane, 0, out=target[index])
        return int(target.count_nonzero())

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


def lazily_zeroed_uint8(shape: Sequence[int]) -> np.ndarray:
    """A zero uint8 array whose memory the kernel maps page by page on first write, in 4 KB pages.

    NumPy asks Linux for 2 MB transparent huge pages on large arrays, so one written voxel makes the kernel clear
    (and, when memory is fragmented, first compact) 2 MB: 5-20 ms per sparse box, about 2 s over 117 mostly empty
    1 mm masks. An anonymous mmap is zero-filled, gets no huge-page advice and is unmapped with the array."""
    count = int(np.prod(shape))
    return np.frombuffer(mmap.mmap(-1, max(count, 1)), dtype=np.uint8, count=count).reshape(shape)


BOX_BLOCK = 8  # input voxels per block edge: positives in blocks that do not touch get separate boxes


def positive_boxes(positive: np.ndarray, block: int = BOX_BLOCK) -> List[Tuple[List[int], List[int]]]:
    """(first, last) input index per axis of boxes that together hold every True voxel of ``positive``: one per
    group of touching ``block``-edged blocks that hold one, shrunk to the True voxels inside it; boxes that come
    within one voxel of each other along every axis are merged, so any two are at least two voxels apart along
    some axis."""
    if not positive.any():
        return []
    grid = [-(-size // block) for size in positive.shape]
    padded = np.zeros([n * block for n in grid], dtype=bool)
    padded[tuple(slice(0, size) for size in positive.shape)] = positive
    occupied = padded.reshape([d for n in grid for d in (n, block)]).any(axis=tuple(range(1, 2 * len(grid), 2)))
    groups, _ = ndimage.label(occupied, structure=np.ones((3,) * occupied.ndim))
    boxes = []
    for group in ndimage.find_objects(groups):
        inside = positive[tuple(slice(s.start * block, s.stop * block) for s in group)]
        low, high = [], []
        for axis, s in enumerate(group):
            present = np.flatnonzero(inside.any(axis=tuple(a for a in range(inside.ndim) if a != axis)))
            low.append(s.start * block + int(present[0]))
            high.append(s.start * block + int(present[-1]))
        boxes.append((low, high))
    return _merge_close_boxes(boxes)


def _merge_close_boxes(boxes: List[Tuple[List[int], List[int]]]) -> List[Tuple[List[int], List[int]]]:
    """Replace any two boxes that come within one voxel along every axis by their bounding box, until none do
    (the bounding boxes of two separate groups can still interleave)."""
    merged: List[Tuple[List[int], List[int]]] = []
    for low, high in boxes:
        close = True
        while close:
            close = next((b for b in merged if all(l0 <= h1 + 1 and l1 <= h0 + 1 for l0, h0, l1, h1
                                                   in zip(low, high, *b))), None)
            if close is not None:
                merged.remove(close)
                low = [min(a, b) for a, b in zip(low, close[0])]
                high = [max(a, b) for a, b in zip(high, close[1])]
        merged.append((low, high))
    return merged


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

    def mask(self, logits: torch.Tensor) -> Tuple[np.ndarray, int]:
        """(*network_shape) logits of one prompt -> (uint8 mask in the original array layout (sigmoid > 0.5), its
        foreground voxel count)."""
        full = lazily_zeroed_uint8(self.properties["shape_before_cropping"])
        cropped = full[bounding_box_to_slice(self.properties["bbox_used_for_cropping"])]  # a view: filled in place
        if self.fast_resampler is not None:
            voxels = self.fast_resampler.fill(logits, cropped)
        else:
            resampled = self.generic_resampling(logits[None].float().cpu().numpy(), self.cropped_shape, *self.spacings)
            cropped[...] = np.asarray(resampled[0]) > 0
            voxels = int(np.count_nonzero(cropped))
        return full.transpose(self.transpose_backward), voxels

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
