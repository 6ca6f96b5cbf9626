"""How a contrastive step spends device memory: micro-batches, bf16 autocast, activation checkpointing.

None of these changes what is optimised, so they are arguments of `train`, not TrainConfig fields: a run
may resume on another GPU with other options. Micro-batches (gradient caching, gradient_cache.py) and
activation checkpointing give the full batch's gradients exactly (up to float summation order); bf16
autocast runs the towers' matmuls and convolutions in bfloat16 while the loss stays in float32.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Optional

import torch


@dataclass(frozen=True)
class MemoryOptions:
    """micro_batch: samples per forward/backward chunk of a process's batch (None: the whole batch at once).
    bf16: autocast the towers to bfloat16; None means on for CUDA devices, off elsewhere.
    checkpoint_activations: recompute each trainable STU-Net encoder stage in the backward pass instead of
        keeping its activations (torch.utils.checkpoint)."""

    micro_batch: Optional[int] = None
    bf16: Optional[bool] = None
    checkpoint_activations: bool = False

    def __post_init__(self):
        if self.micro_batch is not None and self.micro_batch < 1:
            raise ValueError(f"--micro-batch must be a positive number of samples, got {self.micro_batch}.")

    def uses_bf16(self, device: torch.device) -> bool:
        return device.type == "cuda" if self.bf16 is None else self.bf16

    def autocast(self, device: torch.device) -> AbstractContextManager:
        """The context the towers' forward passes run in."""
        if not self.uses_bf16(device):
            return nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)
