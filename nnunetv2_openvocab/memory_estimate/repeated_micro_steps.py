"""Gradient caching's repeated micro-batch passes, traced until they repeat and then charged without tracing.

With `--micro-batch 1` a step of batch 32 runs 32 embedding passes and 32 recompute-and-backward passes, and
tracing each on fake tensors made the estimate take minutes. The passes of one kind and micro-batch size run
the same operators on the same shapes, so each leaves the same footprint relative to the bytes live at its
start: `transient` (its peak above that start) and `retained` (bytes still live after it: its outputs, or
the gradients the first backward allocates). `RepeatedMicroSteps` traces every pass until two consecutive ones
of a kind and size have the same footprint and retain exactly their outputs' bytes; later ones raise the
peak to (bytes live now + transient) and return empty outputs of the same shapes, so the bytes they leave
behind, and everything after them, is what the full trace gives. tests/test_memory_estimate.py checks the
peak against the full trace (ContrastiveStep.trace_every_micro_batch) on small configurations.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils._pytree import tree_flatten, tree_map

from nnunetv2_openvocab.memory_estimate.live_bytes import LiveTensorBytes, active_tracker
from nnunetv2_openvocab.pretraining.gradient_cache import Result

Footprint = tuple[int, int]  # (peak above the bytes live at the start, bytes live after minus at the start)


def _output_bytes(result) -> int:
    return sum(value.numel() * value.element_size() for value in tree_flatten(result)[0]
               if isinstance(value, torch.Tensor))


@dataclass(frozen=True)
class _EmptyTensor:
    """The shape of an output, kept instead of the output so that it does not outlive its pass."""

    size: torch.Size
    dtype: torch.dtype
    device: torch.device


def _shapes_of(result):
    return tree_map(lambda value: _EmptyTensor(value.shape, value.dtype, value.device)
                    if isinstance(value, torch.Tensor) else value, result)


def _empty_like(shapes):
    return tree_map(lambda value: torch.empty(value.size, dtype=value.dtype, device=value.device)
                    if isinstance(value, _EmptyTensor) else value, shapes)


class RepeatedMicroSteps:
    """A MicroStepRunner for cached_forward_backward inside live_bytes.fake_peak (or real_peak)."""

    def __init__(self):
        self.last: dict[tuple[str, int], Footprint] = {}  # the last traced pass's footprint per kind and size
        self.settled: dict[tuple[str, int], tuple[Footprint, object]] = {}  # footprint, output shapes

    def __call__(self, kind: str, size: int, step: Callable[[], Result]) -> Result:
        tracker = active_tracker()
        key = (kind, size)
        if key in self.settled:
            (transient, _), shapes = self.settled[key]
            tracker.peak = max(tracker.peak, tracker.current + transient)
            return _empty_like(shapes)
        result, footprint = _traced(tracker, step)
        if self.last.get(key) == footprint and footprint[1] == _output_bytes(result):
            self.settled[key] = (footprint, _shapes_of(result))
        self.last[key] = footprint
        return result


def _traced(tracker: LiveTensorBytes, step: Callable[[], Result]) -> tuple[Result, Footprint]:
    start, peak_before = tracker.current, tracker.peak
    tracker.peak = start
    try:
        result = step()
        return result, (tracker.peak - start, tracker.current - start)
    finally:
        tracker.peak = max(peak_before, tracker.peak)

