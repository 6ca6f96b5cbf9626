"""Rules and defaults that several modules share, named once.

* ``DEFAULT_STEP_SIZE``: nnU-Net's sliding-window step, a fraction of the patch (its ``-step_size`` default).
* ``FOREGROUND_LOGIT`` / ``binarise``: a voxel is in a prompt's mask where its logit exceeds 0, i.e. its sigmoid
  exceeds 0.5 (one sigmoid per prompt, so prompts may overlap). Training's validation Dice, the presence figures,
  ceding and the masks written at inference all use this one rule.
"""
from __future__ import annotations

from typing import TypeVar

DEFAULT_STEP_SIZE = 0.5
FOREGROUND_LOGIT = 0.0

ArrayLike = TypeVar("ArrayLike")  # a torch tensor or a numpy array


def binarise(logits: ArrayLike) -> ArrayLike:
    """Boolean foreground of per-prompt logits (same type and shape)."""
    return logits > FOREGROUND_LOGIT
