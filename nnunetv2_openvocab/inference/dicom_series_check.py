"""Check a DICOM series folder before predicting (issue 22 §5). ITK reads a series with a missing or unreadable
slice without a word: it spreads the remaining slices over the averaged spacing (19 slices at 2.11 mm instead of
20 at 2.0 mm), so every mask would come back in a silently wrong geometry. Refused instead, in one line:

* a DICOM file that cannot be read, or whose pixel data is shorter than its rows x columns x bits say;
* two slices at the same position;
* a gap: neighbouring slices further apart than the series' typical spacing (the median step), naming the
  missing position(s) in patient coordinates;
* irregular spacing (steps differing by more than ``SPACING_TOLERANCE`` of the median).

Files without the DICOM preamble ('DICM' at byte 128) are not slices (a README, a DICOMDIR-less export's extras)
and are skipped, as ITK skips them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from nnunetv2_openvocab.user_errors import UserError

SPACING_TOLERANCE = 0.1  # relative; scanners write positions to ~1e-3 mm, so real series stay far below this
_PREAMBLE_END = 132


class DicomSeriesError(UserError):
    """A DICOM series that cannot be predicted as it is; the message names the file or the missing position."""


def _is_dicom_file(path: Path) -> bool:
    with open(path, "rb") as stream:
        head = stream.read(_PREAMBLE_END)
    return len(head) == _PREAMBLE_END and head[128:] == b"DICM"


def _read_slice(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """(position, orientation) of one slice, after checking that its pixel data is all there."""
    try:
        ds = pydicom.dcmread(path)
        position = np.array(ds.ImagePositionPatient, float)
        orientation = np.array(ds.ImageOrientationPatient, float)
    except (InvalidDicomError, OSError, ValueError, EOFError, AttributeError, TypeError) as error:
        raise DicomSeriesError(f"{path}: attribute ImagePositionPatient (0020,0032) or ImageOrientationPatient "
                               f"(0020,0037) cannot be read ({type(error).__name__}); the file may be truncated. "
                               f"Copy or export it again.") from None
    if "PixelData" not in ds:
        raise DicomSeriesError(f"{path}: attribute PixelData (7FE0,0010) is missing. Export the series again.")
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        try:
            ds.pixel_array
        except Exception as error:  # any decoder failure: the frame is unusable  # noqa: BLE001
            raise DicomSeriesError(f"{path}: PixelData (7FE0,0010) cannot be decoded ({error}). Install the decoder "
                                   f"(pylibjpeg, pylibjpeg-openjpeg) or export the series uncompressed.") from None
    else:
        expected = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * int(ds.BitsAllocated) // 8
        if len(ds.PixelData) < expected:
            raise DicomSeriesError(f"{path}: PixelData (7FE0,0010) holds {len(ds.PixelData)} of {expected} bytes: "
                                   f"the file is truncated. Copy or export it again.")
    return position, orientation


def check_series_slices(folder: Path) -> None:
    """Raise DicomSeriesError if the series in ``folder`` has an unreadable, missing or irregular slice."""
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and _is_dicom_file(p))
    slices = [_read_slice(path) for path in files]
    if len(slices) < 2:
        return
    row, column = slices[0][1][:3], slices[0][1][3:]
    normal = np.cross(row, column)
    order = sorted(range(len(slices)), key=lambda i: float(slices[i][0] @ normal))
    offsets = np.array([slices[i][0] @ normal for i in order])
    steps = np.diff(offsets)
    spacing = float(np.median(steps))
    for k, step in enumerate(steps):
        first, second = files[order[k]], files[order[k + 1]]
        if step < SPACING_TOLERANCE * max(spacing, 1e-3):
            raise DicomSeriesError(f"{first} and {second} lie at the same slice position ({offsets[k]:.2f} mm along "
                                   f"the slice normal). Remove the duplicate slice.")
        if abs(step - spacing) > SPACING_TOLERANCE * spacing:
            multiple = int(round(step / spacing))  # a gap is a whole number of steps; anything else is irregular
            regular_gap = multiple >= 2 and abs(step - multiple * spacing) <= SPACING_TOLERANCE * spacing
            missing = [slices[order[k]][0] + normal * spacing * j for j in range(1, multiple if regular_gap else 1)]
            where = "; ".join("(" + ", ".join(f"{v:.2f}" for v in point) + ")" for point in missing[:3])
            if missing:
                raise DicomSeriesError(
                    f"DICOM series {folder} lacks {len(missing)} slice(s) between {first.name} and {second.name}, at "
                    f"ImagePositionPatient {where} mm (spacing {spacing:.3g} mm): a missing or unreadable file. "
                    f"Export the whole series again.")
            raise DicomSeriesError(f"DICOM series {folder} has irregular slice spacing: {step:.3g} mm between "
                                   f"{first.name} and {second.name}, {spacing:.3g} mm elsewhere. Resample it to "
                                   f"regular spacing first.")
