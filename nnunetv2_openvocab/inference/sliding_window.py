"""Gaussian-blended sliding-window prediction of any per-voxel map (prompt logits or decoder features).

The tiles and the Gaussian weights are nnU-Net's (``compute_steps_for_sliding_window``, ``pad_nd_image``, and
``compute_gaussian`` called as ``nnUNetPredictor`` calls it: float16, peak 10, weights that underflow to 0 replaced
by the smallest non-zero one), so the blend equals nnU-Net's (tests/test_nnunet_equivalence.py). What differs
from ``nnUNetPredictor``: the blended sum lives in one (K, *S) buffer at network resolution (float16 by default)
with a single float32 weight map (nnU-Net sums the weights in float16), and channels are normalised one at a time
on request (``BlendedVolume.channel``), so no second full-size copy of all channels is ever made.
Mirroring (test-time augmentation) and fold ensembling add into the same sums.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from acvl_utils.cropping_and_padding.padding import pad_nd_image
from nnunetv2.inference.sliding_window_prediction import compute_gaussian, compute_steps_for_sliding_window
from tqdm import tqdm
from nnunetv2_openvocab.constants import DEFAULT_STEP_SIZE

# nnUNetPredictor's Gaussian: sigma = patch / 8, scaled to a peak of 10 so that float16 sums keep their precision
# near the tile borders, and float16 itself. Any other weights (a floor, float32 values) blend the tiles' outer
# shells differently from nnU-Net: the face centres already weigh 3.4e-4 of the peak.
GAUSSIAN_SIGMA_SCALE = 1.0 / 8
GAUSSIAN_PEAK = 10.0
GAUSSIAN_DTYPE = torch.float16
TileFunction = Callable[[torch.Tensor], torch.Tensor]  # (1, C, *patch) -> (K, *patch)


def tile_slicers(image_shape: Sequence[int], patch_size: Sequence[int], step_size: float) -> List[Tuple[slice, ...]]:
    """Spatial slices of every tile, in nnU-Net's order (image_shape already padded to >= patch_size)."""
    steps = compute_steps_for_sliding_window(tuple(image_shape), tuple(patch_size), step_size)
    return [tuple(slice(start, start + size) for start, size in zip(corner, patch_size))
            for corner in itertools.product(*steps)]


def mirror_combinations(mirror_axes: Optional[Sequence[int]]) -> List[Tuple[int, ...]]:
    """Flip-axis tuples of the tensor (B, C, *spatial) for test-time mirroring; () is the unflipped pass."""
    if not mirror_axes:
        return [()]
    axes = [a + 2 for a in mirror_axes]
    return [()] + [c for n in range(1, len(axes) + 1) for c in itertools.combinations(axes, n)]


@dataclass
class BlendedVolume:
    """Weighted sums (K, *padded) and weights (*padded); ``channel(k)`` is the blended map of channel k."""

    sums: torch.Tensor
    weights: torch.Tensor
    unpad: Tuple[slice, ...]  # spatial slices that remove nnU-Net's padding

    @property
    def num_channels(self) -> int:
        return self.sums.shape[0]

    def channel(self, index: int) -> torch.Tensor:
        """(*S) float32 blended map of one channel, padding removed."""
        return (self.sums[index].float() / self.weights)[self.unpad]

    def values_at(self, channels: Sequence[int], voxels: Tuple[torch.Tensor, ...]) -> torch.Tensor:
        """(len(channels), N) float32 blended values at N voxels of the unpadded grid (``voxels``: one index
        tensor per axis, as ``nonzero(as_tuple=True)`` gives); gathers only those voxels."""
        padded = [index + int(axis.start) for index, axis in zip(voxels, self.unpad)]
        rows = torch.as_tensor(list(channels), device=self.sums.device)[:, None]
        return self.sums[(rows, *(index[None] for index in padded))].float() / self.weights[tuple(padded)]

    def weighted_channel_sum(self, coefficients: torch.Tensor) -> torch.Tensor:
        """(*S) float32 ``sum_k coefficients[k] * channel(k)``, built one channel at a time."""
        total = torch.zeros(self.weights.shape, dtype=torch.float32, device=self.weights.device)
        for k in range(self.num_channels):
            total.add_(self.sums[k].float(), alpha=float(coefficients[k]))
        return (total / self.weights)[self.unpad]


class SlidingWindow:
    """Tiles, Gaussian weights and mirroring for one patch size; ``blend`` runs a tile function over an image."""

    def __init__(self, patch_size: Sequence[int], step_size: float = DEFAULT_STEP_SIZE,
                 mirror_axes: Optional[Sequence[int]] = None, device: torch.device = torch.device("cpu"),
                 accumulation_dtype: torch.dtype = torch.float16, show_progress: bool = True):
        if not 0 < step_size <= 1:
            raise ValueError(f"step_size must be in (0, 1], got {step_size}; nnU-Net's default is 0.5.")
        self.patch_size = tuple(int(p) for p in patch_size)
        self.step_size = step_size
        self.flips = mirror_combinations(mirror_axes)
        self.device = device
        self.accumulation_dtype = accumulation_dtype
        self.show_progress = show_progress

    def padded(self, data: torch.Tensor) -> Tuple[torch.Tensor, Tuple[slice, ...]]:
        """(C, *S) -> (C, *padded) with every side >= the patch, plus the spatial slices undoing it."""
        padded, revert = pad_nd_image(data, self.patch_size, "constant", {"value": 0}, True, None)
        return padded, tuple(revert[1:])

    def tiles(self, padded_shape: Sequence[int]) -> List[Tuple[slice, ...]]:
        return tile_slicers(padded_shape, self.patch_size, self.step_size)

    def predict_tile(self, tile_function: TileFunction, tile: torch.Tensor) -> torch.Tensor:
        """(1, C, *patch) -> (K, *patch), averaged over the mirrored passes."""
        total = None
        for axes in self.flips:
            output = tile_function(torch.flip(tile, axes) if axes else tile)
            output = torch.flip(output, [a - 1 for a in axes]) if axes else output  # (K, *patch): no batch axis
            total = output.float() if total is None else total.add_(output.float())
        return total.div_(len(self.flips)) if len(self.flips) > 1 else total

    def start(self, data: torch.Tensor, num_channels: int,
              results_device: torch.device = torch.device("cpu")) -> Tuple[torch.Tensor, BlendedVolume]:
        """Pad ``data`` (C, *S) and allocate the zeroed sums (num_channels, *padded) and weights."""
        padded, unpad = self.padded(data)
        sums = torch.zeros((num_channels, *padded.shape[1:]), dtype=self.accumulation_dtype, device=results_device)
        weights = torch.zeros(padded.shape[1:], dtype=torch.float32, device=results_device)
        return padded, BlendedVolume(sums, weights, unpad)

    @torch.inference_mode()
    def accumulate(self, volume: BlendedVolume, padded: torch.Tensor, tile_function: TileFunction,
                   description: str = "Sliding window") -> None:
        """Add the Gaussian-weighted output of ``tile_function`` on every tile of ``padded`` to ``volume``.
        Call once per fold (after loading its weights) to ensemble folds."""
        device = volume.sums.device
        gaussian = compute_gaussian(self.patch_size, GAUSSIAN_SIGMA_SCALE, GAUSSIAN_PEAK, GAUSSIAN_DTYPE,
                                    device).float()  # float16 values, exact in float32
        for slicer in tqdm(self.tiles(padded.shape[1:]), desc=description, unit="tile",
                           disable=not self.show_progress, leave=False):
            tile = padded[(slice(None), *slicer)][None].to(self.device)
            output = self.predict_tile(tile_function, tile).to(device)  # (K, *patch)
            # weighted in float32 and rounded once into the sums, as nnU-Net's `predicted_logits[sl] += prediction`
            volume.sums[(slice(None), *slicer)] += output.mul_(gaussian)
            volume.weights[slicer] += gaussian
