"""Resumable training checkpoints: RUN/checkpoint.pt, written atomically and read with weights_only=True.

Content (only tensors, numbers, strings, lists and dicts, so weights_only loading accepts it):
  format     "nnunetv2_openvocab.pretrain_checkpoint/1"
  step       optimiser steps done; the sampler position is (step // batches_per_epoch, step % batches_per_epoch)
  model      ContrastiveModel state dict (text tower, and the image encoder when unlocked)
  loss       loss state dict (the learnable logit scale)
  optimizer, scheduler   their state dicts
  rng        one {"cpu": ByteTensor, "cuda": ByteTensor or absent} per process, in rank order (dropout);
             numpy and Python RNGs need no saving: samples draw from generators seeded per (epoch, index)
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.distributed as dist

from nnunetv2_openvocab.atomic_files import atomic_path
from nnunetv2_openvocab.pretraining.distributed import DistributedContext
from nnunetv2_openvocab.pretraining.rng_states import device_rng_state, restore_device_rng_state
from nnunetv2_openvocab.safe_loading import torch_load_weights_only

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "nnunetv2_openvocab.pretrain_checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"


def gather_rng_states(context: DistributedContext) -> list[dict[str, torch.Tensor]]:
    """Every process's RNG state, in rank order (collective: all processes must call it)."""
    state = device_rng_state(context.device)
    if context.world_size == 1:
        return [state]
    states = [None] * context.world_size
    dist.all_gather_object(states, state)
    return states


def restore_rng_state(states: list[dict[str, torch.Tensor]], context: DistributedContext) -> None:
    if len(states) != context.world_size:
        logger.warning("The checkpoint was written by %d processes, this run has %d: dropout randomness will not "
                       "repeat the interrupted run.", len(states), context.world_size)
        return
    restore_device_rng_state(states[context.rank], context.device)


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)


def load_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}; start a new run without --resume.")
    state = torch_load_weights_only(path)
    found = state.get("format") if isinstance(state, dict) else type(state).__name__
    if found != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: field 'format' is {found!r}, expected {CHECKPOINT_FORMAT!r}; it was "
                         f"not written by nnUNetv2_openvocab_pretrain train.")
    return state
