"""Live tensor bytes of a block of PyTorch code, and their peak, with real or fake tensors.

`LiveTensorBytes` is a dispatch mode: every tensor an operator returns is charged by its storage (once per
storage, so views are free) and released when that storage is freed (a weakref finaliser). Parameters,
gradients, optimiser state, saved activations and temporaries are all operator outputs, so the running
total is the bytes of all tensors alive at that moment, and `peak` its maximum over the block.

`fake_peak` runs the block under FakeTensorMode: shapes, dtypes and lifetimes are computed exactly as for
real tensors, but nothing is allocated, so STU-Net L at 220^3 costs seconds on a CPU. `real_peak` runs it
on real tensors (validation at small sizes). Fake tensors hold no values: a value the block reads back
(`.item()`, `if tensor:`) is 1 there, so logged losses read 1 and data-dependent branches take their true
side (the fine-tuning loss's fully annotated batch, its common case), and a data-dependent shape (`nonzero`,
boolean indexing) takes its upper bound, every element selected (row 4's regions all in view). What neither sees: workspace memory inside one operator
(cuDNN convolutions, matmul), the CUDA caching allocator's rounding and fragmentation, and the CUDA
context (~0.5 GB); benchmarks/gpu_check.sh measures the difference on a GPU.
"""
from __future__ import annotations

import gc
import weakref
from typing import Callable

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode, _get_current_dispatch_mode_stack
from torch.utils._pytree import tree_flatten

GIB = 1024 ** 3


class LiveTensorBytes(TorchDispatchMode):
    """Running total and peak of the bytes of live tensor storages created inside the mode."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, int] = {}  # storage address -> bytes
        self.current = 0
        self.peak = 0

    def _charge(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage._cdata  # one key per storage, shared by all its views
        if key in self.live:
            return
        self.live[key] = storage.nbytes()
        self.current += self.live[key]
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._release, key)

    def _release(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and isinstance(args[0], FakeTensor):
            return {torch.bool: True}.get(args[0].dtype, 1.0 if args[0].dtype.is_floating_point else 1)
        if func is torch.ops.aten.nonzero.default and isinstance(args[0], FakeTensor):
            output = torch.empty(args[0].numel(), args[0].ndim, dtype=torch.long, device=args[0].device)
            self._charge(output)
            return output
        if func is torch.ops.aten.index.Tensor and any(_is_fake_mask(index) for index in args[1]):
            args = (args[0], [column for index in args[1] for column in _selected_everywhere(index)])
        output = func(*args, **(kwargs or {}))
        for value in tree_flatten(output)[0]:
            if isinstance(value, torch.Tensor):
                self._charge(value)
        return output


def _is_fake_mask(index) -> bool:
    return isinstance(index, FakeTensor) and index.dtype == torch.bool


def _selected_everywhere(index) -> list:
    """A boolean index as the integer indices of its upper bound (every element selected)."""
    if not _is_fake_mask(index):
        return [index]
    return list(torch.zeros(index.numel(), index.ndim, dtype=torch.long, device=index.device).unbind(1))


def active_tracker() -> LiveTensorBytes:
    """The LiveTensorBytes mode the calling code runs under (inside fake_peak or real_peak)."""
    trackers = [mode for mode in _get_current_dispatch_mode_stack() if isinstance(mode, LiveTensorBytes)]
    if not trackers:
        raise RuntimeError("active_tracker() is only meaningful inside fake_peak or real_peak")
    return trackers[-1]


def _peak(block: Callable[[], None], fake: bool) -> int:
    gc.collect()
    tracker = LiveTensorBytes()
    if fake:
        with FakeTensorMode(allow_non_fake_inputs=True), tracker:
            block()
    else:
        with tracker:
            block()
    return tracker.peak


def fake_peak(block: Callable[[], None]) -> int:
    """Peak live tensor bytes of `block` (which creates its own model and inputs), computed without allocating."""
    return _peak(block, fake=True)


def real_peak(block: Callable[[], None]) -> int:
    """The same on real CPU tensors."""
    return _peak(block, fake=False)
