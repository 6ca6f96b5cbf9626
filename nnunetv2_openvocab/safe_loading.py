"""Read weights without running pickled code: every checkpoint we load goes through ``torch_load_weights_only``
(or ``read_safetensors``), which turn torch's and safetensors' errors into one message that names the file.

nnU-Net checkpoints also pickle their loss curves as numpy scalars/arrays, which weights_only refuses; only
those numpy globals are allow-listed (``NUMPY_SAFE_GLOBALS``). A file needing anything else is refused with
``UnsafeCheckpointError``, whose message deliberately does not suggest ``weights_only=False`` (torch's does):
that would run whatever code the file carries. A truncated or foreign file gives ``CorruptCheckpointError``.
"""
from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from nnunetv2_openvocab.user_errors import UserError


def _numpy_safe_globals() -> list[tuple[Callable, str]]:
    """The numpy callables that rebuild plain scalars and arrays, under numpy 1.x and 2.x names.

    Checkpoints saved under numpy 1.x name `numpy.core.multiarray.*`, which numpy 2 moved to
    `numpy._core`; both names are mapped onto the installed objects.
    """
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:
        from numpy.core import multiarray
    allowed: list[tuple[Callable, str]] = [(np.dtype, "numpy.dtype"), (np.ndarray, "numpy.ndarray")]
    # unpickling a dtype sets its state, which weights_only allows only on listed classes
    for scalar_type in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                        np.uint64, np.float16, np.float32, np.float64):
        dtype_class = type(np.dtype(scalar_type))
        allowed.append((dtype_class, f"numpy.dtypes.{dtype_class.__name__}"))
    for package in ("numpy.core", "numpy._core"):
        allowed.append((multiarray.scalar, f"{package}.multiarray.scalar"))
        allowed.append((multiarray._reconstruct, f"{package}.multiarray._reconstruct"))
    return allowed


NUMPY_SAFE_GLOBALS = _numpy_safe_globals()


class UnsafeCheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be read without running arbitrary pickled code."""


class CorruptCheckpointError(UserError, RuntimeError):
    """A weights file that is truncated, corrupt, or not a checkpoint at all."""


def _refused_globals(path: Path, error: Exception) -> list[str]:
    """The pickled globals weights_only refused: scanned in zip checkpoints, read from torch's message otherwise."""
    if zipfile.is_zipfile(path):
        try:
            return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception:  # a damaged archive: nothing to scan, the file is corrupt rather than unsafe
            return []
    return sorted(set(re.findall(r"GLOBAL ([\w.]+)", str(error))))


def _corrupt(path: Path, error: Exception) -> CorruptCheckpointError:
    detail = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return CorruptCheckpointError(f"{path} is not a readable PyTorch checkpoint ({detail[:200]}): it is truncated, "
                                  f"corrupt or another kind of file. Copy it again, or point to the right file.")


def torch_load_weights_only(path: str | Path, map_location="cpu"):
    """``torch.load(path, weights_only=True)`` with plain numpy values allowed; raises UnsafeCheckpointError or
    CorruptCheckpointError, each naming the file, instead of torch's messages."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals(NUMPY_SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        refused = _refused_globals(path, error)
        if not refused:
            raise _corrupt(path, error) from None
        raise UnsafeCheckpointError(
            f"{path} was refused: it pickles {', '.join(refused)}, beyond tensors and plain numpy values, and "
            f"unpickling those could run arbitrary code. Ask whoever made it for the weights as a .safetensors "
            f"file or a plain state dict of tensors (torch.save(model.state_dict(), ...)).") from None
    except FileNotFoundError:
        raise
    except Exception as error:  # the unpickler fails on damaged bytes in many ways (EOFError, IndexError, ...)
        raise _corrupt(path, error) from None


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """A safetensors file on the CPU; CorruptCheckpointError (naming the file) if it is short or damaged."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except FileNotFoundError:
        raise
    except Exception as error:  # safetensors raises its own error type for short or corrupt files
        raise _corrupt(Path(path), error) from None
