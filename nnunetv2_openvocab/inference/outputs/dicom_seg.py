"""``--output-type dicom_seg``: one binary DICOM Segmentation object per case of a DICOM series (highdicom).

``<case>.dcm`` holds one segment per prompt, labelled with the prompt (the first 64 characters, DICOM's limit
for a label; a longer prompt is kept whole in the segment description), coded by ``segment_coding``. Frames
reference the source series' instances (highdicom's derivation and referenced-series sequences); empty frames
are omitted. The masks come in the series' own array layout (file k of ``dicom_series_files`` is slice k), so
frame geometry is the source's.

highdicom builds the object from all segments at once: the case's masks are held as one byte per voxel per
prompt until ``finish``. For many prompts on a large series, predict in batches of prompts.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import List, Optional, Sequence

import highdicom as hd
import numpy as np
import pydicom
import pydicom.errors
from pydicom.sr.codedict import codes

from nnunetv2_openvocab.atomic_files import atomic_path
from nnunetv2_openvocab.inference.outputs.dicom_sources import DicomSourceError, read_source_headers
from nnunetv2_openvocab.inference.outputs.segment_coding import segment_codes

DICOM_SEG_ENDING = ".dcm"
LABEL_LENGTH = 64  # VR LO
PACKAGE = "nnunetv2-openvocab"


def software_version() -> str:
    try:
        return version(PACKAGE)
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def segment_descriptions(prompts: Sequence[str], algorithm_name: str) -> List[hd.seg.SegmentDescription]:
    algorithm = hd.AlgorithmIdentificationSequence(name=algorithm_name[:LABEL_LENGTH],
                                                   family=codes.cid7162.ArtificialIntelligence,
                                                   version=software_version())
    descriptions = []
    for number, prompt in enumerate(prompts, start=1):
        category, property_type = segment_codes(prompt)
        description = hd.seg.SegmentDescription(number, prompt[:LABEL_LENGTH], category, property_type,
                                                hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm)
        if len(prompt) > LABEL_LENGTH:
            description.SegmentDescription = prompt
        descriptions.append(description)
    return descriptions


class DicomSegWriter:
    """Collects one case's masks in prompt order; ``finish`` writes ``path`` atomically."""

    def __init__(self, series_folder: Path, prompts: Sequence[str], path: Path, algorithm_name: str):
        self.series_folder, self.prompts, self.path = Path(series_folder), list(prompts), Path(path)
        self.algorithm_name = algorithm_name
        self.segments: Optional[np.ndarray] = None  # (slices, rows, columns, prompts) bool, highdicom's layout

    def add(self, prompt_index: int, mask: np.ndarray) -> None:
        if self.segments is None:
            self.segments = np.zeros((*mask.shape, len(self.prompts)), dtype=bool)
        self.segments[..., prompt_index] = mask

    def finish(self) -> Path:
        sources = read_source_headers(self.series_folder)
        source_series = sources[0].get("SeriesNumber") or 0  # type 2: may be empty
        try:
            segmentation = self._segmentation(sources, int(source_series) + 1000)
        except (ValueError, KeyError, TypeError, AttributeError) as error:  # highdicom's refusals of the source
            raise DicomSourceError(f"DICOM series {self.series_folder}: highdicom cannot build a SEG from it "
                                   f"({type(error).__name__}: {error}). Use --output-type nifti.") from None
        self.segments = None
        with atomic_path(self.path, check=_check_dicom) as temporary:
            segmentation.save_as(temporary)
        return self.path

    def _segmentation(self, sources: list, series_number: int) -> hd.seg.Segmentation:
        return hd.seg.Segmentation(
            source_images=sources, pixel_array=self.segments, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=segment_descriptions(self.prompts, self.algorithm_name),
            series_instance_uid=hd.UID(), series_number=series_number, sop_instance_uid=hd.UID(),
            instance_number=1, manufacturer=PACKAGE, manufacturer_model_name=self.algorithm_name[:LABEL_LENGTH],
            software_versions=software_version(), device_serial_number="none",
            content_description="free-text prompted segmentation", content_label="OPENVOCAB",
            omit_empty_frames=bool(self.segments.any()))  # a SEG needs at least one frame


def _check_dicom(path: Path) -> None:
    """The written file parses to its last element (pixel data last): a truncated file does not."""
    try:
        pydicom.dcmread(path).PixelData
    except (pydicom.errors.InvalidDicomError, AttributeError, EOFError, OSError) as error:
        raise ValueError(f"unreadable DICOM: {error}") from None

