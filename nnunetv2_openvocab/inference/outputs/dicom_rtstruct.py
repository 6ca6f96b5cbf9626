"""``--output-type dicom_rtstruct``: one DICOM RT Structure Set per case of a DICOM series (pydicom).

``<case>_rtstruct.dcm`` holds one ROI per prompt whose mask is not empty, in prompt order:
  * ROI Name = the prompt (its first 64 characters, DICOM's limit, with '\\' as '/'; a prompt that had to be
    changed is kept whole in ROI Description); ROI Display Color = the prompt's colour in the preview and the
    combined map's legend (prompt_colours); RT ROI Identification Code = the prompt's segmented property type
    (segment_coding);
  * references: the source study, series, frame of reference and every source instance (Referenced Frame of
    Reference Sequence); each contour names the instance it lies on;
  * contours: per image plane of the series (the axial slices of an axial CT), one CLOSED_PLANAR contour per
    connected component of the mask on that plane, along its pixels' edges, with its holes joined in by
    zero-width keyhole cuts (keyhole_contours); an island inside a hole has its own contour. Filled by the
    even-odd rule, the nonzero winding rule or as a union of separately filled contours (readers differ), they
    give back the mask exactly.
A prompt with an empty mask gets no ROI (an ROI without contours is refused by some planning systems); such
prompts are named in a warning and in the Structure Set Description.

Geometry: a mask comes in the series' array layout (file k of ``dicom_series_files`` is slice k, row r and
column c are its pixel's), and each contour point is placed with its own instance's Image Position and
Orientation (Patient) and Pixel Spacing, so any slice order and any in-plane direction are kept.

rt-utils (TotalSegmentator's choice) is not used: it needs OpenCV, its contours run through the boundary
pixels' centres (so rasterising them back by pixel centres loses part of the boundary, and one-pixel-wide parts
collapse), its releases have sorted slices by Slice Location or the z coordinate alone, and its README warns
that holes are handled poorly (its optional "pin hole" cuts a line of pixels out of the mask).
"""
from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pydicom
import pydicom.errors
from pydicom.charset import default_encoding
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from nnunetv2_openvocab.atomic_files import atomic_path
from nnunetv2_openvocab.inference.outputs.dicom_seg import LABEL_LENGTH, PACKAGE, software_version
from nnunetv2_openvocab.inference.outputs.dicom_sources import read_source_headers
from nnunetv2_openvocab.inference.outputs.keyhole_contours import component_contours
from nnunetv2_openvocab.inference.outputs.prompt_colours import prompt_colours_8bit
from nnunetv2_openvocab.inference.outputs.segment_coding import segment_codes

logger = logging.getLogger(__name__)

RTSTRUCT_ENDING = "_rtstruct.dcm"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
DETACHED_STUDY_MANAGEMENT = "1.2.840.10008.3.1.2.3.1"  # the SOP class DICOM prescribes for the referenced study
SERIES_NUMBER_OFFSET = 2000  # DICOM-SEG uses 1000: both outputs of one source series stay apart in a viewer
COPIED_FROM_SOURCE = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                      "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")
CONTOUR_DATA = Tag(0x3006, 0x0050)
CHARACTER_SET = "ISO_IR 192"
DESCRIPTION_LENGTH = 1024  # VR ST
Contour = Tuple[int, np.ndarray]  # (slice index, (n, 3) points in mm)


@dataclass(frozen=True)
class ImagePlane:
    """Where one source instance's pixels lie in patient coordinates (mm)."""
    sop_class_uid: str
    sop_instance_uid: str
    first_pixel: np.ndarray  # Image Position (Patient): the centre of pixel (0, 0)
    row_step: np.ndarray  # from one row to the next: column direction cosine x row spacing
    column_step: np.ndarray  # from one column to the next: row direction cosine x column spacing

    @classmethod
    def of(cls, source: Dataset) -> "ImagePlane":
        orientation = np.asarray(source.ImageOrientationPatient, dtype=float)
        row_spacing, column_spacing = map(float, source.PixelSpacing)
        return cls(source.SOPClassUID, source.SOPInstanceUID, np.asarray(source.ImagePositionPatient, dtype=float),
                   orientation[3:] * row_spacing, orientation[:3] * column_spacing)

    def to_patient(self, row_columns: np.ndarray) -> np.ndarray:
        """(n, 2) (row, column) pixel coordinates -> (n, 3) patient coordinates."""
        return self.first_pixel + row_columns[:, :1] * self.row_step + row_columns[:, 1:] * self.column_step


def plane_contours(mask: np.ndarray, planes: Sequence[ImagePlane]) -> List[Contour]:
    """The contours of a (slices, rows, columns) mask, slice by slice."""
    return [(k, planes[k].to_patient(loop)) for k in np.flatnonzero(mask.any(axis=(1, 2)))
            for loop in component_contours(mask[k])]


def _encoded_decimals(tag: BaseTag, values: np.ndarray) -> RawDataElement:
    """A DS element already encoded: pydicom would build and validate one object per number, which takes most
    of the writing time for a few hundred thousand contour coordinates. 0.001 mm; a DS holds 16 characters."""
    text = "\\".join(f"{value:.3f}" for value in values).encode("ascii")
    text += b" " * (len(text) % 2)  # DICOM values have even length
    return RawDataElement(tag, "DS", len(text), text, 0, False, True)


def _image_reference(plane: ImagePlane) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = plane.sop_class_uid, plane.sop_instance_uid
    return item


def _referenced_frame_of_reference(source: Dataset, planes: Sequence[ImagePlane]) -> Dataset:
    series = Dataset()
    series.SeriesInstanceUID = source.SeriesInstanceUID
    series.ContourImageSequence = DicomSequence([_image_reference(plane) for plane in planes])
    study = Dataset()
    study.ReferencedSOPClassUID, study.ReferencedSOPInstanceUID = DETACHED_STUDY_MANAGEMENT, source.StudyInstanceUID
    study.RTReferencedSeriesSequence = DicomSequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = source.FrameOfReferenceUID
    frame.RTReferencedStudySequence = DicomSequence([study])
    return frame


def _roi_items(number: int, prompt: str, colour: np.ndarray, contours: Sequence[Contour],
               planes: Sequence[ImagePlane], frame_of_reference: str, algorithm_name: str) -> Tuple[Dataset, ...]:
    """(Structure Set ROI, ROI Contour, RT ROI Observations) items of one prompt."""
    roi = Dataset()
    name = prompt.replace("\\", "/")[:LABEL_LENGTH]  # a backslash would split the name into several values
    roi.ROINumber, roi.ReferencedFrameOfReferenceUID, roi.ROIName = number, frame_of_reference, name
    if name != prompt:
        roi.ROIDescription = prompt
    roi.ROIGenerationAlgorithm, roi.ROIGenerationDescription = "AUTOMATIC", algorithm_name[:LABEL_LENGTH]
    items = []
    for slice_index, points in contours:
        item = Dataset()
        item.ContourImageSequence = DicomSequence([_image_reference(planes[slice_index])])
        item.ContourGeometricType, item.NumberOfContourPoints = "CLOSED_PLANAR", len(points)
        item[CONTOUR_DATA] = _encoded_decimals(CONTOUR_DATA, points.ravel())
        item.set_original_encoding(False, True, default_encoding)  # as written: pydicom copies the encoded value
        items.append(item)
    contour = Dataset()
    contour.ROIDisplayColor = [int(value) for value in colour]
    contour.ContourSequence = DicomSequence(items)
    contour.ReferencedROINumber = number
    observation = Dataset()
    observation.ObservationNumber, observation.ReferencedROINumber = number, number
    observation.RTROIIdentificationCodeSequence = DicomSequence([segment_codes(prompt)[1]])
    observation.RTROIInterpretedType, observation.ROIInterpreter = "", ""  # the planner assigns the type
    return roi, contour, observation


def structure_set(source: Dataset, planes: Sequence[ImagePlane], prompts: Sequence[str],
                  contours: Dict[int, List[Contour]], algorithm_name: str) -> pydicom.FileDataset:
    """The RT Structure Set of ``prompts`` on the series of ``source`` (its first instance) and ``planes`` (all its
    instances): an ROI for prompt k only where ``contours[k]`` is not empty; the others are named in the
    Structure Set Description."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = RT_STRUCTURE_SET_STORAGE, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = CHARACTER_SET  # UTF-8: prompts may hold any character
    ds.SOPClassUID, ds.SOPInstanceUID = RT_STRUCTURE_SET_STORAGE, meta.MediaStorageSOPInstanceUID
    for keyword in COPIED_FROM_SOURCE:
        setattr(ds, keyword, source.get(keyword, ""))
    now = datetime.datetime.now()
    ds.InstanceCreationDate = ds.StructureSetDate = ds.SeriesDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = ds.StructureSetTime = ds.SeriesTime = now.strftime("%H%M%S")
    ds.Modality, ds.SeriesInstanceUID = "RTSTRUCT", generate_uid()
    ds.SeriesNumber, ds.InstanceNumber = int(source.get("SeriesNumber") or 0) + SERIES_NUMBER_OFFSET, 1
    ds.OperatorsName, ds.Manufacturer, ds.SoftwareVersions = "", PACKAGE, software_version()
    ds.ManufacturerModelName = algorithm_name[:LABEL_LENGTH]
    ds.StructureSetLabel, ds.StructureSetName = "OPENVOCAB", "free-text prompted segmentation"
    empty = [prompt for k, prompt in enumerate(prompts) if not contours.get(k)]
    if empty:
        ds.StructureSetDescription = f"no ROI for prompts with an empty mask: {'; '.join(empty)}"[:DESCRIPTION_LENGTH]
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([_referenced_frame_of_reference(source, planes)])
    colours = prompt_colours_8bit(len(prompts))
    items = [_roi_items(k + 1, prompts[k], colours[k], contours[k], planes, source.FrameOfReferenceUID,
                        algorithm_name) for k in range(len(prompts)) if contours.get(k)]
    ds.StructureSetROISequence, ds.ROIContourSequence, ds.RTROIObservationsSequence = (
        DicomSequence([roi_items[part] for roi_items in items]) for part in range(3))
    return ds


class DicomRtstructWriter:
    """Turns one case's masks into contours as they come (prompt order); ``finish`` writes ``path`` atomically.

    Only the contours are held, not the masks."""

    def __init__(self, series_folder: Path, prompts: Sequence[str], path: Path, algorithm_name: str):
        self.prompts, self.path, self.algorithm_name = list(prompts), Path(path), algorithm_name
        self.sources = read_source_headers(series_folder)  # UIDs repaired from the file meta where blank
        self.planes = [ImagePlane.of(source) for source in self.sources]
        self.contours: Dict[int, List[Contour]] = {}

    def add(self, prompt_index: int, mask: np.ndarray) -> None:
        self.contours[prompt_index] = plane_contours(np.asarray(mask, dtype=bool), self.planes)

    @property
    def empty_prompts(self) -> List[str]:
        return [prompt for k, prompt in enumerate(self.prompts) if not self.contours.get(k)]

    def finish(self) -> Path:
        dataset = structure_set(self.sources[0], self.planes, self.prompts, self.contours, self.algorithm_name)
        if self.empty_prompts:
            logger.warning("%s: no ROI for %d prompt(s) with an empty mask: %s", self.path,
                           len(self.empty_prompts), ", ".join(map(repr, self.empty_prompts)))
        expected = len(self.prompts) - len(self.empty_prompts)
        with atomic_path(self.path, check=partial(check_rtstruct, rois=expected)) as temporary:
            dataset.save_as(temporary, enforce_file_format=True)
        return self.path


def check_rtstruct(path: Path, rois: int) -> None:
    """The written file parses to its last element with ``rois`` ROIs in each ROI module: a truncated file does
    not."""
    try:
        ds = pydicom.dcmread(path)
        counts = {len(ds[keyword].value) for keyword in ("StructureSetROISequence", "ROIContourSequence",
                                                         "RTROIObservationsSequence")}
    except (pydicom.errors.InvalidDicomError, KeyError, EOFError, OSError) as error:
        raise ValueError(f"unreadable RTSTRUCT: {error!r}") from None
    if counts != {rois}:
        raise ValueError(f"RTSTRUCT holds {sorted(counts)} ROIs, {rois} were written")
