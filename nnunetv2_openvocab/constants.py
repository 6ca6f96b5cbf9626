"""Rules and defaults that several modules share, named once.

* ``DEFAULT_STEP_SIZE``: nnU-Net's sliding-window step, a fraction of the patch (its ``-step_size`` default).
* ``FOREGROUND_LOGIT`` / ``binarise``: a voxel is in a prompt's mask where its logit exceeds 0, i.e. its sigmoid
  exceeds 0.5 (one sigmoid per prompt, so prompts may overlap). Training's validation Dice, the presence figures,
  ceding and the masks written at inference all use this one rule.
* ``mixed_precision``: nnU-Net's rule for training and prediction, fp16 autocast on CUDA and none elsewhere.
"""
from __future__ import annotations

from typing import TypeVar

import torch
from nnunetv2.utilities.helpers import dummy_context

DEFAULT_STEP_SIZE = 0.5
FOREGROUND_LOGIT = 0.0

ArrayLike = TypeVar("ArrayLike")  # a torch tensor or a numpy array


def binarise(logits: ArrayLike) -> ArrayLike:
    """Boolean foreground of per-prompt logits (same type and shape)."""
    return logits > FOREGROUND_LOGIT


def mixed_precision(device: torch.device):
    """The autocast context of a training step or a prediction tile on `device` (CUDA: float16, as nnU-Net;
    CPU and MPS: none, so their results stay float32)."""
    return torch.autocast(device.type, enabled=True) if device.type == "cuda" else dummy_context()
