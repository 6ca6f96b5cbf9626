"""Everything written for one case, one prompt at a time: masks, and on request the combined map, statistics, preview.

The files and folders are those of the README's "Output folder layout" (the one description of it).
Sub-folders keep the extra files from colliding with a prompt's mask name. Case names become file names, so
``check_case_outputs`` refuses any that is not one plain file name or that makes an output name too long. Mask
and probability files may be written by background processes (``ExportQueue``, nnU-Net's ``-nps``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from nnunetv2.imageio.base_reader_writer import BaseReaderWriter

from nnunetv2_openvocab.inference.background_workers import ExportQueue
from nnunetv2_openvocab.inference.outputs.combined_map import CombinedLabelMap
from nnunetv2_openvocab.inference.outputs.dicom_rtstruct import RTSTRUCT_ENDING, DicomRtstructWriter
from nnunetv2_openvocab.inference.outputs.dicom_seg import DICOM_SEG_ENDING, DicomSegWriter
from nnunetv2_openvocab.inference.presence import Presence
from nnunetv2_openvocab.inference.outputs.preview import write_preview
from nnunetv2_openvocab.inference.outputs.probability_files import (geometry_file, probability_file, write_geometry,
                                                            write_probabilities)
from nnunetv2_openvocab.inference.patient_side import SideCheck
from nnunetv2_openvocab.inference.outputs.statistics import mask_statistics, statistics_document
from nnunetv2_openvocab.atomic_files import MAX_FILE_NAME_BYTES, TEMPORARY_NAME_OVERHEAD, write_json_atomic
from nnunetv2_openvocab.inference.outputs.segmentation_files import write_segmentation
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name
from nnunetv2_openvocab.user_errors import UserError

COMBINED_FOLDER, STATISTICS_FOLDER, PREVIEW_FOLDER = "combined", "statistics", "previews"
NIFTI, DICOM_SEG, DICOM_RTSTRUCT = "nifti", "dicom_seg", "dicom_rtstruct"
OUTPUT_TYPES = (NIFTI, DICOM_SEG, DICOM_RTSTRUCT)
DicomWriter = Union[DicomSegWriter, DicomRtstructWriter]
DICOM_WRITERS = {DICOM_SEG: (DicomSegWriter, DICOM_SEG_ENDING), DICOM_RTSTRUCT: (DicomRtstructWriter, RTSTRUCT_ENDING)}


@dataclass(frozen=True)
class OutputOptions:
    combined: bool = False
    statistics: bool = False
    preview: bool = False
    save_probabilities: bool = False
    output_type: str = NIFTI  # per-prompt mask files, or one DICOM-SEG or RTSTRUCT per case

    @property
    def needs_image(self) -> bool:
        return self.statistics or self.preview

    @property
    def needs_label_map(self) -> bool:
        return self.combined or self.preview


def expected_files(output_folder: Path, case_id: str, prompts: Sequence[str], ending: str,
                   options: OutputOptions) -> List[Path]:
    if options.output_type in DICOM_WRITERS:
        files = [dicom_output_file(output_folder, case_id, options.output_type)]
    else:
        files = [output_folder / prompt_file_name(case_id, p, ending) for p in prompts]
    if options.save_probabilities:
        files += [probability_file(output_folder, case_id, p) for p in prompts]
        files.append(geometry_file(output_folder, case_id))
    if options.combined:
        files += [output_folder / COMBINED_FOLDER / f"{case_id}{ending}",
                  output_folder / COMBINED_FOLDER / f"{case_id}.json"]
    if options.statistics:
        files.append(output_folder / STATISTICS_FOLDER / f"{case_id}.json")
    if options.preview:
        files.append(output_folder / PREVIEW_FOLDER / f"{case_id}.png")
    return files


def dicom_output_file(output_folder: Path, case_id: str, output_type: str) -> Path:
    return output_folder / f"{case_id}{DICOM_WRITERS[output_type][1]}"


def dicom_writer(output_type: str, series_folder: Path, prompts: Sequence[str], output_folder: Path, case_id: str,
                 algorithm_name: str) -> Optional[DicomWriter]:
    """The writer of the case's one DICOM object, or None for per-prompt mask files."""
    if output_type not in DICOM_WRITERS:
        return None
    return DICOM_WRITERS[output_type][0](series_folder, prompts, dicom_output_file(output_folder, case_id, output_type),
                                         algorithm_name)


class CaseNameError(UserError, ValueError):
    """A case name that would write outside the output folder, hide its files, or exceed the file-name limit."""


def check_case_outputs(case_id: str, prompts: Sequence[str], ending: str, options: OutputOptions,
                       origin: str) -> None:
    """Refuse ``case_id`` unless it is one plain path component (no separator, '..', NUL or leading dot) whose
    longest output name, with the temporary-file suffix, fits the file-name limit."""
    if (not case_id or case_id.startswith(".") or ".." in case_id
            or any(character in case_id for character in ("/", "\\", "\0"))):
        raise CaseNameError(f"Case name {case_id!r} (from {origin}) is not a plain file name: it must not contain "
                            f"'/', '\\', '..' or NUL, nor start with '.'. Give the job a \"case\" such as "
                            f"\"patient_7\", or rename the image.")
    longest = max((path.name for path in expected_files(Path(), case_id, prompts, ending, options)),
                  key=lambda name: len(name.encode("utf-8")))
    excess = len(longest.encode("utf-8")) + TEMPORARY_NAME_OVERHEAD - MAX_FILE_NAME_BYTES
    if excess > 0:
        raise CaseNameError(f"Case name {case_id!r} (from {origin}) is too long: its output {longest!r} and its "
                            f"temporary name would exceed the {MAX_FILE_NAME_BYTES}-byte file-name limit. Shorten "
                            f"the case name by at least {excess} bytes (or shorten the prompt).")


class CaseOutputWriter:
    """Receives the masks of one case in prompt order and writes each output as soon as it is complete.

    ``dicom`` (a DICOM-SEG or RTSTRUCT writer) replaces the per-prompt mask files; ``export`` runs the mask and
    probability writes (inline by default)."""

    def __init__(self, output_folder: Path, case_id: str, prompts: Sequence[str], ending: str,
                 reader_writer: BaseReaderWriter, properties: dict, options: OutputOptions,
                 image: Optional[np.ndarray] = None, dicom: Optional[DicomWriter] = None,
                 export: Optional[ExportQueue] = None):
        self.folder, self.case_id, self.prompts, self.ending = output_folder, case_id, list(prompts), ending
        self.reader_writer, self.properties, self.options, self.image = reader_writer, properties, options, image
        self.dicom, self.export = dicom, export or ExportQueue(0)
        self.label_map: Optional[CombinedLabelMap] = None
        self.statistics: Dict[str, Dict] = {}
        self.probability_files: Dict[str, Path] = {}
        self.written: List[Path] = []

    def add(self, prompt_index: int, mask: np.ndarray, presence: Optional[Presence] = None,
            probabilities: Optional[np.ndarray] = None, side_check: Optional[SideCheck] = None) -> None:
        prompt = self.prompts[prompt_index]
        if self.dicom is not None:
            self.dicom.add(prompt_index, mask)
        else:
            self._write_segmentation(mask, self.folder / prompt_file_name(self.case_id, prompt, self.ending))
        if probabilities is not None:
            path = probability_file(self.folder, self.case_id, prompt)
            self.export.submit(write_probabilities, path, probabilities)
            self.probability_files[prompt] = path
            self.written.append(path)
        if self.options.needs_label_map:
            self.label_map = self.label_map or CombinedLabelMap(mask.shape, self.prompts)
            self.label_map.add(prompt_index, mask)
        if self.options.statistics:
            self.statistics[prompt] = mask_statistics(mask, self.image, self.properties["spacing"])
            if presence is not None:
                self.statistics[prompt].update(presence.to_dict())
            if side_check is not None:
                self.statistics[prompt]["side_check"] = side_check.to_dict()

    def finish(self) -> List[Path]:
        if self.dicom is not None:
            self.written.append(self.dicom.finish())
        if self.probability_files:
            path = geometry_file(self.folder, self.case_id)
            write_geometry(path, self.properties, self.probability_files)
            self.written.append(path)
        if self.options.combined:
            self._write_segmentation(self.label_map.labels,
                                     self.folder / COMBINED_FOLDER / f"{self.case_id}{self.ending}")
            self._write_json(self.label_map.legend(), self.folder / COMBINED_FOLDER / f"{self.case_id}.json")
        if self.options.statistics:
            self._write_json(statistics_document(self.case_id, self.properties["spacing"], self.statistics),
                             self.folder / STATISTICS_FOLDER / f"{self.case_id}.json")
        if self.options.preview:
            path = self.folder / PREVIEW_FOLDER / f"{self.case_id}.png"
            write_preview(self.image, self.label_map.labels, self.prompts, self.properties, path, title=self.case_id)
            self.written.append(path)
        return self.written

    def _write_segmentation(self, array: np.ndarray, path: Path) -> None:
        self.export.submit(write_segmentation, self.reader_writer, array, path, self.properties)
        self.written.append(path)

    def _write_json(self, payload: dict, path: Path) -> None:
        write_json_atomic(path, payload)
        self.written.append(path)
