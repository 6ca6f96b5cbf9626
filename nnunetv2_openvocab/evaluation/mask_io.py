"""Read reference label maps and prediction masks with nnU-Net's SimpleITKIO, refusing what would give
silently wrong metrics: truncated files (ITK zero-fills them), 2D or multi-channel images, NaN or Inf voxels,
geometry mismatches and predictions that are label maps rather than binary masks. Errors name the file and
the fix."""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

from nnunetv2_openvocab.image_integrity import check_complete, count_nonfinite_voxels, unreadable

_GEOMETRY_TOLERANCE = 1e-4


def read_image(path: Path) -> Tuple[np.ndarray, dict]:
    """(X, Y, Z) array and nnU-Net properties of one 3D image."""
    check_complete(path)
    try:
        image, properties = SimpleITKIO().read_seg(str(path))
    except RuntimeError as error:  # SimpleITK's message for non-image files is long and generic
        raise unreadable(path, str(error).strip().splitlines()[-1]) from None
    if image.shape[0] != 1:
        raise ValueError(f"{path} has {image.shape[0]} channels; expected a single 3D mask or label map.")
    if len(properties["sitk_stuff"]["spacing"]) != 3:
        raise ValueError(f"{path} is a {len(properties['sitk_stuff']['spacing'])}D image; expected a 3D mask or label "
                         f"map in the geometry of the CT it belongs to.")
    if count_nonfinite_voxels(path) or not np.isfinite(image.min()) or not np.isfinite(image.max()):
        raise ValueError(f"{path} has NaN or Inf voxels; masks and label maps hold integer values. Write it again "
                         f"as an integer image.")
    return image[0], properties


def check_same_geometry(reference: Tuple[np.ndarray, dict], prediction: Tuple[np.ndarray, dict],
                        reference_file: Path, prediction_file: Path) -> None:
    """Raise if shape, spacing, origin or direction differ (metrics would compare misaligned voxels)."""
    (ref_array, ref_props), (pred_array, pred_props) = reference, prediction
    mismatches = [f"shape {pred_array.shape} vs {ref_array.shape}"] if pred_array.shape != ref_array.shape else []
    for field in ("spacing", "origin", "direction"):
        ref_value, pred_value = ref_props["sitk_stuff"][field], pred_props["sitk_stuff"][field]
        if not np.allclose(pred_value, ref_value, rtol=0, atol=_GEOMETRY_TOLERANCE):
            mismatches.append(f"{field} {tuple(np.round(pred_value, 4))} vs {tuple(np.round(ref_value, 4))}")
    if mismatches:
        raise ValueError(
            f"Prediction {prediction_file} does not match the geometry of reference {reference_file}: "
            f"{'; '.join(mismatches)} (prediction vs reference). Predict on the same image the reference "
            "was drawn on, in its original geometry (nnUNetv2_openvocab_predict keeps it)."
        )


def as_binary_mask(array: np.ndarray, path: Path) -> np.ndarray:
    if np.any((array != 0) & (array != 1)):
        raise ValueError(f"Prediction {path} holds values other than 0 and 1 (max {array.max():g}); expected one "
                         "binary mask per prompt. Point -pred to the per-prompt masks, or name a label map <case><file_ending> "
                         "to score it with dataset.json's label values.")
    return array != 0
