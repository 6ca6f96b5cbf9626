"""The random state dropout draws from on a device: the CPU generator, plus the GPU's own on CUDA (dropout on a
GPU draws from the GPU's generator, so replaying or resuming it needs that state too). One definition for gradient
caching's replay and the resumable checkpoints."""
from __future__ import annotations

import torch


def device_rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """{"cpu": ByteTensor} and, on CUDA, {"cuda": ByteTensor} of ``device``."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_device_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    """Set the generators ``device_rng_state`` read; a CUDA state is ignored on a CPU run (a checkpoint from a GPU
    resumed on the CPU still restores the CPU generator)."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
