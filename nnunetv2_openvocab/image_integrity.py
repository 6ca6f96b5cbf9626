"""Refuse truncated image files before ITK reads them: ITK silently zero-fills what is missing.

Used by prediction (input images) and evaluation (reference and predicted masks).
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import nibabel
import numpy as np


def unreadable(path: Path, reason: str) -> ValueError:
    return ValueError(f"Cannot read {path} as an image ({reason}). The file may be truncated or corrupt: write it "
                      "again (re-run prediction or conversion).")


def check_complete(path: Path) -> None:
    """ITK silently zero-fills truncated NIfTI files, so check them first: a .gz stream must reach its end
    marker, and a .nii must be as long as its header says."""
    if path.name.endswith(".gz"):
        try:
            with gzip.open(path, "rb") as stream:
                while stream.read(1 << 24):
                    pass
        except (EOFError, OSError, zlib.error) as error:
            raise unreadable(path, str(error)) from None
    elif path.name.endswith(".nii"):
        try:
            header = nibabel.load(path).header
        except Exception as error:  # nibabel raises several types for a broken header
            raise unreadable(path, str(error)) from None
        data_bytes = int(np.prod(header.get_data_shape())) * header.get_data_dtype().itemsize
        expected = int(header.get_data_offset()) + data_bytes
        if path.stat().st_size < expected:
            raise unreadable(path, f"{path.stat().st_size} bytes, header needs {expected}")
