"""Find the cases of a prediction run and read them: image files nnU-Net reads, or DICOM series folders.

What ``-i`` may point to (``find_cases``):
  * an image file: one case, named after the file without its ending and nnU-Net's channel suffix
    (``ct_0000.nii.gz`` -> ``ct``);
  * a folder holding one DICOM series: one case, named after the folder;
  * a folder of images ending in the model's file ending: files sharing a name before nnU-Net's ``_XXXX``
    channel suffix form one case (multi-channel models); each sub-folder holding a DICOM series is a case too.

Every case is checked before anything is predicted (``check_case``), so a bad input stops the run before the
first output is written: the file must be complete (ITK zero-fills truncated files without a word), 3D with
one component, with finite values that are not all one constant (``check_voxel_values``, up front too, so a
constant image late in a folder stops the run before other cases are written), and the case must have the
model's number of channels.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Type

import numpy as np
import SimpleITK as sitk
from nnunetv2.imageio.base_reader_writer import BaseReaderWriter
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

from nnunetv2_openvocab.image_integrity import check_complete, count_nonfinite_voxels
from nnunetv2_openvocab.inference.dicom_series_check import check_series_slices
from nnunetv2_openvocab.inference.dicom_series_layout import check_series_layout
from nnunetv2_openvocab.user_errors import UserError

CHANNEL_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
KNOWN_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".gipl")
DICOM_OUTPUT_ENDING = ".nii.gz"


class InputImageError(UserError, ValueError):
    """An input that cannot be predicted: missing, unreadable, truncated, not 3D, wrong channel count, NaN/Inf
    voxels or one constant value."""


@dataclass(frozen=True)
class CaseInput:
    case_id: str
    sources: Tuple[Path, ...]  # one image file per channel, or one DICOM series folder
    is_dicom: bool = False

    def output_ending(self, model_file_ending: str) -> str:
        return DICOM_OUTPUT_ENDING if self.is_dicom else model_file_ending


def _strip_ending(name: str, file_ending: str) -> str:
    for ending in (file_ending, *KNOWN_ENDINGS):
        if ending and name.endswith(ending):
            return name[: -len(ending)]
    return Path(name).stem


def _split_channel(stem: str) -> Tuple[str, int]:
    match = CHANNEL_SUFFIX.match(stem)
    return (match["case"], int(match["channel"])) if match else (stem, 0)


def dicom_series_ids(folder: Path) -> Tuple[str, ...]:
    return tuple(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def find_cases(input_path: str | Path, file_ending: str) -> List[CaseInput]:
    """The cases under ``input_path`` (a file, a DICOM series folder or a folder of images), sorted by id."""
    path = Path(input_path)
    if path.is_file():
        return [CaseInput(_split_channel(_strip_ending(path.name, file_ending))[0], (path,))]
    if not path.is_dir():
        raise InputImageError(f"Input {path} does not exist. Pass -i with an image file, a folder of images "
                              f"ending in {file_ending!r}, or a DICOM series folder.")
    images = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(file_ending)
                    and not p.name.startswith("."))
    if not images and dicom_series_ids(path):
        return [CaseInput(path.name, (path,), is_dicom=True)]
    channels: Dict[str, Dict[int, Path]] = {}
    for image in images:
        case, channel = _split_channel(_strip_ending(image.name, file_ending))
        channels.setdefault(case, {})[channel] = image
    cases = [CaseInput(case, tuple(files[c] for c in sorted(files))) for case, files in channels.items()]
    cases += [CaseInput(sub.name, (sub,), is_dicom=True) for sub in sorted(path.iterdir())
              if sub.is_dir() and dicom_series_ids(sub)]
    duplicates = sorted({c.case_id for c in cases if [d.case_id for d in cases].count(c.case_id) > 1})
    if duplicates:
        raise InputImageError(f"Cases {duplicates} in {path} come both from image files and DICOM folders; rename "
                              f"one of them so that every case name is unique.")
    if not cases:
        raise InputImageError(f"No images ending in {file_ending!r} and no DICOM series in {path}. Name images like "
                              f"case_0000{file_ending} or put each DICOM series in its own sub-folder.")
    return sorted(cases, key=lambda c: c.case_id)


def _check_image_file(path: Path) -> None:
    try:
        check_complete(path)
    except ValueError as error:
        raise InputImageError(f"{error} Copy or export the input image again.") from None
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise InputImageError(f"Cannot read {path} as an image: not a format SimpleITK knows, or a corrupt header. "
                              f"Convert it to NIfTI (.nii.gz).") from None
    if reader.GetDimension() == 2:
        raise InputImageError(f"{path} is a 2D image (size {reader.GetSize()}); the model segments 3D volumes. "
                              f"Give the whole CT series as one 3D file, or its DICOM series folder.")
    if reader.GetDimension() != 3:
        raise InputImageError(f"{path} is {reader.GetDimension()}D with size {reader.GetSize()}; expected one 3D "
                              f"volume per file. Split a 4D (multi-phase or time) image into 3D files, one per phase.")
    nonfinite = count_nonfinite_voxels(path)
    if nonfinite:
        raise InputImageError(f"{path} has {nonfinite} NaN or Inf voxels. Replace them (e.g. with the air value "
                              f"-1024 HU) and predict again.")
    if reader.GetNumberOfComponents() != 1:
        raise InputImageError(f"{path} has {reader.GetNumberOfComponents()} components per voxel (e.g. RGB); expected "
                              f"a scalar image. Store each channel as its own file (case_0000, case_0001, ...).")
    image = sitk.ReadImage(str(path))  # kept alive while its array view is read
    check_voxel_values(sitk.GetArrayViewFromImage(image)[None], str(path))


def check_case(case: CaseInput, num_channels: int) -> None:
    """Raise InputImageError, naming the file and the fix, if ``case`` cannot be predicted."""
    if case.is_dicom:
        ids = dicom_series_ids(case.sources[0])
        if len(ids) != 1:
            raise InputImageError(f"DICOM folder {case.sources[0]} holds {len(ids)} series (SeriesInstanceUID "
                                  f"{', '.join(ids)}); put each series in its own folder.")
        check_series_layout(dicom_series_files(case.sources[0]))
        check_series_slices(case.sources[0])
        found_channels = 1
    else:
        for path in case.sources:
            _check_image_file(path)
        found_channels = len(case.sources)
        numbers = [_split_channel(_strip_ending(p.name, ""))[1] for p in case.sources]
        if found_channels > 1 and numbers != list(range(found_channels)):
            raise InputImageError(f"Channels of case {case.case_id} are not numbered 0000..{found_channels - 1:04d}: "
                                  f"{[p.name for p in case.sources]}. Rename them.")
    if found_channels != num_channels:
        raise InputImageError(f"Case {case.case_id} has {found_channels} channel(s) ({[str(p) for p in case.sources]}) "
                              f"but the model takes {num_channels}. Give one file per channel: "
                              f"{case.case_id}_0000 ... {case.case_id}_{num_channels - 1:04d}.")


def require_dicom_series(cases: Sequence[CaseInput], output_type: str) -> None:
    """DICOM outputs (SEG, RTSTRUCT) reference their source instances, so only DICOM series inputs can have them."""
    images = [case for case in cases if not case.is_dicom]
    if images:
        raise InputImageError(f"--output-type {output_type} needs DICOM series inputs, but case {images[0].case_id} "
                              f"is the image file {images[0].sources[0]} ({len(images)} such case(s)). Pass the DICOM "
                              f"series folders, or use --output-type nifti for image files.")


def dicom_series_files(folder: Path) -> Tuple[str, ...]:
    """The files of the folder's (single) series in slice order: file k is the array's slice k."""
    return tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), dicom_series_ids(folder)[0]))


def read_dicom_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(dicom_series_files(folder))
    image = reader.Execute()
    if image.GetDimension() != 3:
        raise InputImageError(f"DICOM series in {folder} is {image.GetDimension()}D; expected a 3D volume.")
    return image


def sitk_image_to_case_arrays(image: sitk.Image) -> Tuple[np.ndarray, dict]:
    """(1, z, y, x) float32 array and properties in the layout of nnU-Net's SimpleITKIO, so its writer applies."""
    spacing = image.GetSpacing()
    properties = {"sitk_stuff": {"spacing": spacing, "origin": image.GetOrigin(), "direction": image.GetDirection()},
                  "spacing": [abs(s) for s in spacing[::-1]]}
    return sitk.GetArrayFromImage(image)[None].astype(np.float32, copy=False), properties


def reader_writer_for(case: CaseInput, plans_reader_writer: Type[BaseReaderWriter]) -> BaseReaderWriter:
    """DICOM cases are read and written with SimpleITK; image files with the plans' reader/writer."""
    return SimpleITKIO() if case.is_dicom else plans_reader_writer()


def check_voxel_values(data: np.ndarray, origin: str) -> None:
    """Refuse (C, *spatial) ``data`` with NaN or Inf voxels, or a channel of one constant value."""
    for channel, values in enumerate(data):
        low, high = values.min(), values.max()  # NaN propagates into both, Inf into one of them
        where = f"{origin}" + (f" (channel {channel})" if len(data) > 1 else "")
        if not (np.isfinite(low) and np.isfinite(high)):
            raise InputImageError(f"{where} has NaN or Inf voxels ({int((~np.isfinite(values)).sum())} of "
                                  f"{values.size}). Replace them (e.g. with the air value -1024 HU) and predict again.")
        if low == high:
            raise InputImageError(f"{where} is constant ({float(low):g} everywhere): there is nothing to segment. "
                                  f"Check that the image was exported or converted correctly.")


def read_case(case: CaseInput, plans_reader_writer: Type[BaseReaderWriter]) -> Tuple[np.ndarray, dict]:
    """(C, *spatial) float32 image and the properties the writer needs to restore the original geometry."""
    if case.is_dicom:
        data, properties = sitk_image_to_case_arrays(read_dicom_series(case.sources[0]))
    else:
        data, properties = plans_reader_writer().read_images([str(p) for p in case.sources])
    check_voxel_values(data, ", ".join(map(str, case.sources)))
    return data, properties
