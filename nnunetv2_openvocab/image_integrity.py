"""Refuse image files that ITK would read wrongly without a word: truncated files (ITK zero-fills what is
missing) and NaN/Inf voxels of float NIfTI files (ITK reads NaN as 0).

Used by prediction (input images) and evaluation (reference and predicted masks).
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import nibabel
import numpy as np

from nnunetv2_openvocab.atomic_files import check_nifti


def unreadable(path: Path, reason: str) -> ValueError:
    return ValueError(f"Cannot read {path} as an image ({reason}). The file may be truncated or corrupt: write it "
                      "again (re-run prediction or conversion).")


def check_complete(path: Path) -> None:
    """A .gz stream must reach its end marker, and a .nii must be as long as its header says."""
    if path.name.endswith(".gz"):
        try:
            with gzip.open(path, "rb") as stream:
                while stream.read(1 << 24):
                    pass
        except (EOFError, OSError, zlib.error) as error:
            raise unreadable(path, str(error)) from None
    elif path.name.endswith(".nii"):
        try:
            check_nifti(path)
        except ValueError as error:
            raise unreadable(path, str(error)) from None


def count_nonfinite_voxels(path: Path) -> int:
    """NaN/Inf voxels of a float NIfTI file, read with nibabel: ITK's NIfTI reader silently turns NaN into 0.
    Integer files cannot hold NaN and other formats keep it through ITK, so both give 0 here."""
    if not path.name.endswith((".nii", ".nii.gz")):
        return 0
    image = nibabel.load(path)
    if image.get_data_dtype().kind != "f":
        return 0
    return int(np.count_nonzero(~np.isfinite(np.asanyarray(image.dataobj))))
