"""torchrun integration: process group from the environment, and DDP that sums gradients.

Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT set) the process group is started
with NCCL on GPU and gloo on CPU; a plain `python` call runs as a single process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def process_group_backend(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def ddp_device_ids(device: torch.device):
    """DDP's device_ids: the process's one GPU, or None for a CPU module."""
    return [device.index] if device.type == "cuda" else None


def init_distributed(device: str = "cpu") -> DistributedContext:
    """Join the torchrun process group if there is one; 'cuda' becomes cuda:LOCAL_RANK."""
    use_cuda = torch.device(device).type == "cuda"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group(process_group_backend(torch.device(device)))
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    if use_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return DistributedContext(rank, world_size, torch.device("cuda", local_rank))
    return DistributedContext(rank, world_size, torch.device(device))


def _sum_allreduce_hook(process_group, bucket):
    # no annotations: DDP checks them at run time and would see strings under `from __future__ import annotations`
    group = process_group if process_group is not None else dist.group.WORLD
    return dist.all_reduce(bucket.buffer(), group=group, async_op=True).get_future().then(
        lambda future: future.value()[0])


def sum_gradients(model: nn.Module, context: DistributedContext) -> nn.Module:
    """Wrap `model` in DDP whose gradient all-reduce SUMS instead of averaging (see loss.py for why).

    Unused parameters are allowed (a sentence encoder's pooler, for one, never gets a gradient).
    """
    if context.world_size == 1:
        return model
    wrapped = DistributedDataParallel(model, device_ids=ddp_device_ids(context.device), find_unused_parameters=True)
    wrapped.register_comm_hook(None, _sum_allreduce_hook)
    return wrapped

