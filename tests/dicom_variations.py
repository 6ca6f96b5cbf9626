"""A corpus of DICOM series variations (issue 22 §1), each built from a crop of the bundled CT with pydicom.

Every variation is what real archives hold: an anonymiser that blanked UIDs, a compressed transfer syntax, a
character set that is empty or multi-valued, missing type 2 attributes, files in any order, tilted or oblique
geometry, folders holding more than a series, an enhanced multi-frame object. ``build(name, folder)`` writes the
series into ``folder``; ``REFUSED[name]`` is (file-name pattern, attribute) of the one-line refusal expected before
any prediction, for the variations the standard (or the model's geometry) does not let us use.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (DeflatedExplicitVRLittleEndian, EnhancedCTImageStorage, ExplicitVRLittleEndian,
                         JPEG2000Lossless, JPEGLSLossless, RLELossless, generate_uid)

from dicom_series import ROOT, write_ct_series
from nnunetv2_openvocab.example_dataset import EXAMPLE_CT

CROP = (slice(30, 94), slice(20, 84), slice(60, 72))  # x, y, z of the 3 mm CT: liver and both kidneys, 12 slices
TILT_DEGREES = 15


def ct_crop() -> sitk.Image:
    return sitk.Cast(sitk.ReadImage(str(EXAMPLE_CT))[CROP], sitk.sitkInt16)


def _rewrite(folder: Path, change: Callable[[Dataset, int], None]) -> None:
    """Apply ``change(ds, slice index)`` to every file the series writer made, saving each as it stands."""
    for index, path in enumerate(sorted(folder.glob("slice_*.dcm"))):
        ds = pydicom.dcmread(path)
        change(ds, index)
        ds.save_as(path)


def _written(folder: Path, change: Callable[[Dataset, int], None], image: Optional[sitk.Image] = None) -> None:
    write_ct_series(ct_crop() if image is None else image, folder)
    _rewrite(folder, change)


def _uids_only_in_file_meta(ds: Dataset, _: int) -> None:
    ds.SOPClassUID, ds.SOPInstanceUID = "", ""


def _uids_only_in_data_set(ds: Dataset, _: int) -> None:
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = "", ""


def _no_instance_uid(ds: Dataset, _: int) -> None:
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = ""


def _compressed(transfer_syntax: str) -> Callable[[Dataset, int], None]:
    def change(ds: Dataset, _: int) -> None:
        if transfer_syntax == DeflatedExplicitVRLittleEndian:
            ds.file_meta.TransferSyntaxUID = transfer_syntax  # pydicom deflates the whole data set on saving
        else:
            ds.compress(transfer_syntax, encoding_plugin="pyjpegls" if transfer_syntax == JPEGLSLossless else "")
    return change


def _character_set(value, patient_name: str = None) -> Callable[[Dataset, int], None]:
    def change(ds: Dataset, _: int) -> None:
        if value is None:
            ds.pop("SpecificCharacterSet", None)
        else:
            ds.SpecificCharacterSet = value
        if patient_name is not None:
            ds.PatientName = patient_name
    return change


def _without(*keywords: str) -> Callable[[Dataset, int], None]:
    def change(ds: Dataset, _: int) -> None:
        for keyword in keywords:
            delattr(ds, keyword)
    return change


def _shuffled(folder: Path) -> None:
    """File names in an order unrelated to the slices' (a PACS export names files by SOP Instance UID)."""
    write_ct_series(ct_crop(), folder)
    files = sorted(folder.glob("slice_*.dcm"))
    for path, new in zip(files, np.random.default_rng(0).permutation(len(files))):
        path.rename(folder / f"IM{new:04d}")


def _same_instance_number(ds: Dataset, _: int) -> None:
    ds.InstanceNumber = 1


def _gantry_tilt(ds: Dataset, index: int) -> None:
    """Axial planes stacked along a tilted axis: each slice shifted in y by tan(tilt) x its z distance."""
    position = [float(v) for v in ds.ImagePositionPatient]
    position[1] += np.tan(np.deg2rad(TILT_DEGREES)) * 3.0 * index
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    ds.GantryDetectorTilt = str(TILT_DEGREES)


def _unequal_spacing(ds: Dataset, index: int) -> None:
    position = [float(v) for v in ds.ImagePositionPatient]
    position[2] += 1.5 * max(index - 6, 0)  # 3 mm steps, then 4.5 mm ones
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]


def _oblique() -> sitk.Image:
    image, angle = ct_crop(), np.deg2rad(20)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    image.SetDirection((rotation @ np.array(image.GetDirection()).reshape(3, 3)).ravel().tolist())
    return image


def _two_series(folder: Path) -> None:
    write_ct_series(ct_crop(), folder)
    write_ct_series(ct_crop()[:, :, :6], folder.with_name("second"))
    for path in folder.with_name("second").iterdir():
        path.rename(folder / f"second_{path.name}")


def _non_dicom_files(folder: Path) -> None:
    write_ct_series(ct_crop(), folder)
    (folder / "README.txt").write_text("Exported by a PACS viewer\n")
    (folder / "thumbnail.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (folder / ".DS_Store").write_bytes(bytes(64))
    (folder / "slice_000.dcm.md5").write_text("d41d8cd98f00b204e9800998ecf8427e\n")


def _enhanced_multi_frame(folder: Path) -> None:
    """The crop as one Enhanced CT Image object: a frame per slice, geometry in the functional groups."""
    write_ct_series(ct_crop(), folder.with_name("single_frames"))
    slices = [pydicom.dcmread(p) for p in sorted(folder.with_name("single_frames").iterdir())]
    first = slices[0]
    ds = FileDataset("", copy.deepcopy(first), file_meta=copy.deepcopy(first.file_meta), preamble=b"\0" * 128)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = EnhancedCTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(ROOT)
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness"):
        delattr(ds, keyword)
    ds.NumberOfFrames = len(slices)
    shared, orientation, measures = Dataset(), Dataset(), Dataset()
    orientation.ImageOrientationPatient = first.ImageOrientationPatient
    measures.PixelSpacing, measures.SliceThickness = first.PixelSpacing, first.SliceThickness
    shared.PlaneOrientationSequence, shared.PixelMeasuresSequence = DicomSequence([orientation]), \
        DicomSequence([measures])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    frames = []
    for plane in slices:
        frame, position = Dataset(), Dataset()
        position.ImagePositionPatient = plane.ImagePositionPatient
        frame.PlanePositionSequence = DicomSequence([position])
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
    ds.PixelData = b"".join(plane.PixelData for plane in slices)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    folder.mkdir()
    ds.save_as(folder / "enhanced_ct.dcm", enforce_file_format=True)
    for path in folder.with_name("single_frames").iterdir():
        path.unlink()
    folder.with_name("single_frames").rmdir()


def _changed(change: Callable[[Dataset, int], None], image: Optional[Callable[[], sitk.Image]] = None):
    return lambda folder: _written(folder, change, None if image is None else image())


def _keep(ds: Dataset, _: int) -> None:
    """No change to the header: the variation is in the image written."""


VARIATIONS: Dict[str, Callable[[Path], None]] = {
    "uids_only_in_file_meta": _changed(_uids_only_in_file_meta),
    "uids_only_in_data_set": _changed(_uids_only_in_data_set),
    "jpeg_2000": _changed(_compressed(JPEG2000Lossless)),
    "jpeg_ls": _changed(_compressed(JPEGLSLossless)),
    "rle": _changed(_compressed(RLELossless)),
    "deflated": _changed(_compressed(DeflatedExplicitVRLittleEndian)),
    "character_set_empty": _changed(_character_set("")),
    "character_set_missing": _changed(_character_set(None)),
    "character_set_multi_valued": _changed(_character_set(["", "ISO 2022 IR 100"], "Müller^Jürgen")),
    "latin1_patient_name": _changed(_character_set("ISO_IR 100", "Müller^Jürgen")),
    "utf8_patient_name": _changed(_character_set("ISO_IR 192", "Ørsted^Zoë=山田^太郎")),
    "no_study_id": _changed(_without("StudyID")),
    "no_series_number": _changed(_without("SeriesNumber")),
    "no_patient_id": _changed(_without("PatientID")),
    "no_optional_type_2": _changed(_without("StudyID", "SeriesNumber", "PatientID", "PatientName",
                                            "PatientBirthDate", "PatientSex", "AccessionNumber",
                                            "ReferringPhysicianName")),
    "reversed_slices": _changed(_keep, lambda: sitk.Flip(ct_crop(), [False, False, True])),
    "unsorted_files": _shuffled,
    "duplicate_instance_numbers": _changed(_same_instance_number),
    "oblique": _changed(_keep, _oblique),
    "gantry_tilt": _changed(_gantry_tilt),
    "unequal_slice_spacing": _changed(_unequal_spacing),
    "two_series_in_one_folder": _two_series,
    "non_dicom_files_mixed_in": _non_dicom_files,
    "enhanced_multi_frame": _enhanced_multi_frame,
    "no_instance_uid_anywhere": _changed(_no_instance_uid),
}

# variation -> (file named in the refusal, attribute named in it)
REFUSED: Dict[str, Tuple[str, str]] = {
    "no_instance_uid_anywhere": ("slice_000.dcm", "SOPInstanceUID"),
    "gantry_tilt": ("slice_001.dcm", "ImagePositionPatient"),
    "unequal_slice_spacing": ("slice_006.dcm", "slice spacing"),
    "two_series_in_one_folder": ("series", "SeriesInstanceUID"),
    "enhanced_multi_frame": ("enhanced_ct.dcm", "NumberOfFrames"),
}


def build(name: str, folder: Path) -> Path:
    VARIATIONS[name](folder)
    return folder
