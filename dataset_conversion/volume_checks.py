"""Reading CT volumes and label maps with SimpleITK, and the per-case checks on them.

Each check raises :class:`~dataset_conversion.problems.CaseError` (case skipped) or returns a warning
:class:`~dataset_conversion.problems.Problem`; messages name the file, what was expected, what was found and the fix.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Collection, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from nnunetv2_openvocab.atomic_files import atomic_path
from dataset_conversion.problems import WARNING, CaseError, Problem

# CT in Hounsfield units always has air (about -1000 HU) in or around the body; MRI and CTs stored without their
# rescale intercept (0..4095) do not.
MIN_HU_OF_AIR = -500.0
SPACING_RTOL = 1e-3
HEADER_ATOL = 1e-3


def read_volume(path: Path, role: str) -> sitk.Image:
    if not Path(path).is_file():
        raise CaseError("missing_file", f"{role} {path} does not exist; check the native folder layout "
                                        f"(data/label_tables/<dataset>.json 'layout').")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise CaseError("unreadable", f"{role} {path} could not be read ({str(err).strip().splitlines()[-1]}); "
                                      f"re-download or re-export the file.") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise CaseError("unreadable", f"{role} {path} has {image.GetDimension()} dimensions and "
                                      f"{image.GetNumberOfComponentsPerPixel()} components; expected one 3D volume.")
    return image


def check_looks_like_ct(image: sitk.Image, path: Path) -> None:
    array = sitk.GetArrayViewFromImage(image)
    low, high = float(array.min()), float(array.max())
    if low > MIN_HU_OF_AIR:
        raise CaseError("non_ct_modality",
                        f"Image {path} has intensities {low:g}..{high:g}, but CT in Hounsfield units contains air "
                        f"(<= {MIN_HU_OF_AIR:g}). It is probably not CT (e.g. MRI) or was saved without its rescale "
                        f"intercept; convert it to HU or leave it out.")


def label_array(label: sitk.Image, path: Path) -> np.ndarray:
    """Label voxels as an unsigned integer array (z, y, x); non-integer values are an error."""
    array = sitk.GetArrayFromImage(label)
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise CaseError("unexpected_label_values", f"Label {path} holds non-integer values (dtype {array.dtype}); "
                                                       f"a label map must contain whole class numbers.")
    if array.min() < 0:
        raise CaseError("unexpected_label_values", f"Label {path} holds negative values (min {array.min()}).")
    return array.astype(np.uint8 if array.max() < 256 else np.uint16)


def check_label_values(values: np.ndarray, allowed: Collection[int], path: Path, table_path: Path) -> None:
    unexpected = sorted(set(np.unique(values).tolist()) - set(allowed))
    if unexpected:
        raise CaseError("unexpected_label_values",
                        f"Label {path} contains values {unexpected} that {table_path} does not list (allowed "
                        f"{sorted(allowed)}); correct the table's 'labels' or the label file.")


def match_geometry(image: sitk.Image, label: sitk.Image, label_path: Path) -> Tuple[sitk.Image, Optional[Problem]]:
    """Return the label on the image's grid: size and spacing must agree; origin/direction are copied if they differ."""
    if image.GetSize() != label.GetSize():
        raise CaseError("geometry_mismatch", f"Label {label_path} has size {label.GetSize()} but its image has "
                                             f"{image.GetSize()}; image and label must share one voxel grid.")
    if not np.allclose(image.GetSpacing(), label.GetSpacing(), rtol=SPACING_RTOL, atol=0):
        raise CaseError("geometry_mismatch", f"Label {label_path} has spacing {label.GetSpacing()} but its image has "
                                             f"{image.GetSpacing()}; resample the label onto the image grid.")
    same_header = (image.GetSpacing() == label.GetSpacing()
                   and np.allclose(image.GetOrigin(), label.GetOrigin(), atol=HEADER_ATOL, rtol=0)
                   and np.allclose(image.GetDirection(), label.GetDirection(), atol=HEADER_ATOL, rtol=0))
    if same_header:
        return label, None
    offset = np.abs(np.subtract(image.GetOrigin(), label.GetOrigin())).max()
    patched = sitk.Image(label)
    patched.CopyInformation(image)
    return patched, Problem("geometry_mismatch", WARNING,
                            f"Label {label_path} header differs from its image (origin off by up to {offset:.3g} mm, "
                            f"or direction/spacing rounding); the image's header was copied to the label. Check the "
                            f"overlay if the offset is large.")


def array_like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


def write_volume_atomic(image: sitk.Image, destination: Path) -> None:
    with atomic_path(destination) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)


def scan_fingerprint(image: sitk.Image) -> str:
    """Content hash of a scan: voxel values (as float32) plus grid size, spacing, origin and direction (rounded)."""
    digest = hashlib.sha256()
    def rounded(values, decimals):  # "+ 0.0" turns -0.0 into 0.0 so equal headers hash equally
        return (np.round(values, decimals) + 0.0).tolist()

    geometry = (image.GetSize(), rounded(image.GetSpacing(), 3), rounded(image.GetOrigin(), 2),
                rounded(image.GetDirection(), 4))
    digest.update(repr(geometry).encode())
    for axial_slice in sitk.GetArrayViewFromImage(image):  # slice by slice: no full float32 copy of a large scan
        digest.update(np.ascontiguousarray(axial_slice, dtype=np.float32).tobytes())
    return digest.hexdigest()
