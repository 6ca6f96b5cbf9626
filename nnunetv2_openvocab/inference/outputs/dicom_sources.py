"""The source series' headers as a DICOM-SEG needs them (issue 22 §2, §3): read and repaired where the standard
allows, refused where it does not, before anything is predicted.

Filled (what real archives hold, e.g. anonymised Siemens and GE exports):

* SOP Class / SOP Instance UID empty or absent in the data set: taken from the file meta (Media Storage SOP
  Class / Instance UID), which name the same instance;
* Specific Character Set present but empty: removed, which means the default repertoire (PS3.3 C.12.1.1.2);
  multi-valued with value 1 empty (code extensions from the default repertoire): value 1 written as ISO 2022 IR 6,
  which is what the standard says an empty value 1 means (same section);
* type 2 attributes that highdicom copies into the SEG (patient, study): added empty when absent.

Refused, in one line naming the file and the attribute: an instance without SOP Instance UID in both places,
a series without Study / Series Instance UID or Frame of Reference UID (a SEG could not reference it).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from nnunetv2_openvocab.inference.input_images import CaseInput, dicom_series_files
from nnunetv2_openvocab.user_errors import UserError

FROM_FILE_META = {"SOPClassUID": "MediaStorageSOPClassUID", "SOPInstanceUID": "MediaStorageSOPInstanceUID"}
DEFAULT_REPERTOIRE = "ISO 2022 IR 6"
REQUIRED = ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID")
TYPE_2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID", "StudyDate",
                 "StudyTime", "AccessionNumber", "ReferringPhysicianName")


class DicomSourceError(UserError):
    """A source series that a DICOM-SEG cannot reference; the message names the file and the attribute."""


def _repaired(ds: Dataset, path: str) -> Dataset:
    for attribute, meta_attribute in FROM_FILE_META.items():
        if not str(ds.get(attribute, "") or "").strip():
            value = str(getattr(ds.get("file_meta", Dataset()), meta_attribute, "") or "").strip()
            if not value:
                raise DicomSourceError(f"{path}: {attribute} is empty in the data set and {meta_attribute} in the "
                                       f"file meta: the instance cannot be referenced. Export the series with "
                                       f"its UIDs, or use --output-type nifti.")
            setattr(ds, attribute, value)
    value = ds.get("SpecificCharacterSet")
    character_sets = [str(v or "").strip() for v in (value if isinstance(value, (list, MultiValue)) else [value])]
    if "SpecificCharacterSet" in ds and not any(character_sets):
        del ds.SpecificCharacterSet  # empty: the default repertoire
    elif len(character_sets) > 1 and not character_sets[0]:
        ds.SpecificCharacterSet = [DEFAULT_REPERTOIRE, *character_sets[1:]]  # what an empty value 1 means
    for attribute in REQUIRED:
        if not str(ds.get(attribute, "") or "").strip():
            raise DicomSourceError(f"{path}: {attribute} is missing or empty: a DICOM-SEG could not reference this "
                                   f"series. Export the series with its UIDs, or use --output-type nifti.")
    for attribute in TYPE_2_COPIED:
        if attribute not in ds:
            setattr(ds, attribute, "")
    return ds


def read_source_headers(series_folder: Path) -> List[Dataset]:
    """The headers of the series' files in slice order, repaired as the module says."""
    headers = []
    for path in dicom_series_files(series_folder):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError) as error:
            raise DicomSourceError(f"{path}: cannot be read as DICOM ({error}).") from None
        headers.append(_repaired(ds, path))
    return headers


def check_dicom_sources(cases: Sequence[CaseInput]) -> None:
    """Refuse, before predicting, a DICOM series that a SEG or RTSTRUCT could not reference (read_source_headers)."""
    for case in cases:
        read_source_headers(case.sources[0])
