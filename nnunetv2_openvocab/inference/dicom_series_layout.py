"""Refuse, before predicting, DICOM series whose layout ITK would read into a silently wrong volume (issue 22 §1):

* an enhanced (or any) multi-frame object: ITK reads it as a 4D image (columns x rows x frames x 1),
  and the slice checks and both DICOM writers take one file as one slice;
* slices not stacked along their normal (gantry tilt, or a sheared export): ITK places them on an orthogonal
  grid at the distance between positions, so every voxel after the first slice is shifted in the plane.

Each refusal is one line naming the file and the attribute.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pydicom

from nnunetv2_openvocab.user_errors import UserError

IN_PLANE_TOLERANCE = 0.1  # of a pixel: scanners write positions to ~1e-3 mm


class DicomLayoutError(UserError):
    """A DICOM series in a layout the model cannot be given as one orthogonal volume."""


def check_series_layout(files: Sequence[str]) -> None:
    """Raise DicomLayoutError for a multi-frame file or slices shifted in their own plane (``files``: one series)."""
    headers = [pydicom.dcmread(path, stop_before_pixels=True,
                               specific_tags=["NumberOfFrames", "ImagePositionPatient", "ImageOrientationPatient",
                                              "PixelSpacing", "GantryDetectorTilt"]) for path in files]
    for path, ds in zip(files, headers):
        frames = int(ds.get("NumberOfFrames") or 1)
        if frames > 1:
            raise DicomLayoutError(f"{path}: NumberOfFrames is {frames}: a multi-frame (e.g. enhanced CT) object, "
                                   f"which is read as a 4D image. Convert it to single-frame images (dcm4che's "
                                   f"emf2sf) or to NIfTI (dcm2niix) and predict that.")
    if len(headers) < 2 or any("ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds
                               for ds in headers):
        return  # the slice check names a slice without geometry
    orientation = np.asarray(headers[0].ImageOrientationPatient, dtype=float)
    in_plane = orientation.reshape(2, 3)  # row and column direction cosines
    first = in_plane @ np.asarray(headers[0].ImagePositionPatient, dtype=float)
    pixel = min(map(float, headers[0].get("PixelSpacing") or [1.0, 1.0]))
    for path, ds in zip(files[1:], headers[1:]):
        shift = in_plane @ np.asarray(ds.ImagePositionPatient, dtype=float) - first
        if np.abs(shift).max() > IN_PLANE_TOLERANCE * pixel:
            tilt = ds.get("GantryDetectorTilt")
            raise DicomLayoutError(
                f"{path}: ImagePositionPatient lies {np.abs(shift).max():.2f} mm off the slice normal through the "
                f"first slice's (GantryDetectorTilt {tilt if tilt not in (None, '') else 'not given'}): the slices "
                f"are sheared, not stacked. Resample the series to an orthogonal grid first (e.g. dcm2niix, which "
                f"corrects gantry tilt) and predict the NIfTI.")
