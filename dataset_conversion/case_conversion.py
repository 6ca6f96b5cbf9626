"""Shared conversion framework: per-case conversion in a process pool, resumable, with a per-case problem report.

For every :class:`Case` the worker reads the image and label (a native label map, or per-structure binary masks),
checks them (see :mod:`dataset_conversion.problems`), and writes ``imagesTr/<case>_0000.nii.gz`` +
``labelsTr/<case>.nii.gz`` (``imagesTs``/``labelsTs`` for test cases). Every file is written to a temporary name and
renamed into place, and a per-case done-marker ``.conversion/done/<case>.json`` is written last. A re-run skips the
cases whose marker exists with the same fingerprint (label table + converter version) and whose outputs exist, so a
killed conversion of a 1,200-subject dataset resumes where it stopped. A failing case never stops the run: it gets
an entry in ``conversion_report.json`` and no outputs.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from nnunetv2_openvocab.atomic_files import copy_file_atomic, write_json_atomic
from dataset_conversion.parallel import run_parallel
from dataset_conversion.problems import ERROR, WARNING, CaseError, Problem, write_problem_report
from dataset_conversion.volume_checks import (array_like, check_label_values, check_looks_like_ct, label_array,
                                              match_geometry, read_volume, write_volume_atomic)

logger = logging.getLogger(__name__)

TRAIN = "train"
TEST = "test"
CHANNEL_SUFFIX = "_0000"
FILE_ENDING = ".nii.gz"
STATE_DIR = ".conversion"
REPORT_NAME = "conversion_report.json"


@dataclass(frozen=True)
class Case:
    identifier: str
    split: str                      # TRAIN or TEST
    image: Path
    label: Optional[Path] = None    # native multi-class label map, or
    structure_masks: Tuple[Tuple[str, Path], ...] = ()  # (structure name, binary mask) pairs in table order


@dataclass(frozen=True)
class ConversionJob:
    """What every worker needs to know (picklable)."""
    output_folder: Path
    allowed_values: Tuple[int, ...]
    label_table_path: Path
    fingerprint: str
    structure_values: Dict[str, int] = field(default_factory=dict)


@dataclass
class CaseResult:
    identifier: str
    split: str
    converted: bool
    problems: List[Problem]
    resumed: bool = False


def output_paths(folder: Path, case: Case) -> Tuple[Path, Path]:
    suffix = "Tr" if case.split == TRAIN else "Ts"
    return (folder / f"images{suffix}" / f"{case.identifier}{CHANNEL_SUFFIX}{FILE_ENDING}",
            folder / f"labels{suffix}" / f"{case.identifier}{FILE_ENDING}")


def marker_path(folder: Path, identifier: str) -> Path:
    return folder / STATE_DIR / "done" / f"{identifier}.json"


def _load_marker(case: Case, job: ConversionJob) -> Optional[dict]:
    path = marker_path(job.output_folder, case.identifier)
    if not path.is_file():
        return None
    marker = json.loads(path.read_text(encoding="utf-8"))
    outputs_exist = all(p.is_file() for p in output_paths(job.output_folder, case))
    if marker.get("fingerprint") != job.fingerprint or marker.get("split") != case.split or not outputs_exist:
        return None
    return marker


def _compose_structure_masks(case: Case, image, job: ConversionJob) -> Tuple[np.ndarray, List[Problem]]:
    """Paint binary masks into one label map with the table's values; later structures win overlaps."""
    composed = np.zeros(image.GetSize()[::-1], dtype=np.uint8 if max(job.structure_values.values()) < 256
                        else np.uint16)
    overlaps: Dict[str, int] = {}
    patched: List[str] = []
    for name, path in case.structure_masks:
        mask_image, header_problem = match_geometry(image, read_volume(path, f"Mask of {name!r}"), path)
        if header_problem is not None:
            patched.append(name)
        mask = label_array(mask_image, path) > 0
        overlap = int(np.count_nonzero(composed[mask]))
        if overlap:
            overlaps[name] = overlap
        composed[mask] = job.structure_values[name]
    problems = []
    if overlaps:
        problems.append(Problem("overlapping_masks", WARNING, f"Masks of {case.identifier} overlap; voxels "
                                                              f"reassigned to the later structure: {overlaps}."))
    if patched:
        problems.append(Problem("geometry_mismatch", WARNING, f"Masks {patched} of {case.identifier} had headers "
                                                              f"differing from the image; the image header was used."))
    return composed, problems


def _write_case(case: Case, job: ConversionJob) -> List[Problem]:
    image_dest, label_dest = output_paths(job.output_folder, case)
    image = read_volume(case.image, "Image")
    check_looks_like_ct(image, case.image)
    if case.structure_masks:
        values, problems = _compose_structure_masks(case, image, job)
        label_image = array_like(values, image)
    elif case.label is not None:
        label_image, header_problem = match_geometry(image, read_volume(case.label, "Label"), case.label)
        values = label_array(label_image, case.label)
        problems = [header_problem] if header_problem else []
    else:
        raise CaseError("missing_file", f"Case {case.identifier} has no label path; the layout must give one.")
    check_label_values(values, job.allowed_values, case.label or case.image.parent, job.label_table_path)
    # Copy files that need no change (fast, bit-exact); re-encode the rest.
    if str(case.image).endswith(FILE_ENDING):
        copy_file_atomic(case.image, image_dest)
    else:
        write_volume_atomic(image, image_dest)
    if case.label is not None and not problems and str(case.label).endswith(FILE_ENDING):
        copy_file_atomic(case.label, label_dest)
    else:
        write_volume_atomic(label_image, label_dest)
    return problems


def _remove_outputs(case: Case, folder: Path) -> None:
    for path in (*output_paths(folder, case), marker_path(folder, case.identifier)):
        if path.exists():
            path.unlink()


def convert_case(case: Case, job: ConversionJob) -> CaseResult:
    """Convert one case; never raises: problems come back in the result."""
    try:
        problems = _write_case(case, job)
        marker = {"identifier": case.identifier, "split": case.split, "fingerprint": job.fingerprint,
                  "problems": [p.to_json() for p in problems]}
        write_json_atomic(marker_path(job.output_folder, case.identifier), marker)
        return CaseResult(case.identifier, case.split, True, problems)
    except CaseError as err:
        problem = err.problem
    except Exception as err:  # a bad file must not end a 1,200-case run; the report keeps the message
        problem = Problem("conversion_error", ERROR, f"Converting {case.identifier} ({case.image}) failed with "
                                                     f"{type(err).__name__}: {err}")
    _remove_outputs(case, job.output_folder)  # a case that fails leaves nothing nnU-Net could pick up
    return CaseResult(case.identifier, case.split, False, [problem])


def remove_stale_temporaries(folder: Path, state_dir: str = STATE_DIR) -> None:
    """Temporary files of a killed run (names '.<target>.<random>.tmp...') are ours to delete."""
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs", f"{state_dir}/done", state_dir, ""):
        directory = folder / sub
        if directory.is_dir():
            for path in directory.glob(".*.tmp*"):
                path.unlink()


def _worker_crashed(case: Case, err: BaseException) -> CaseResult:
    return CaseResult(case.identifier, case.split, False, [Problem(
        "conversion_error", ERROR, f"Worker converting {case.identifier} died: {type(err).__name__}: {err}. "
                                   f"Re-run to retry it (converted cases are kept).")])


def check_unique_identifiers(cases: Iterable[Case]) -> None:
    seen: Dict[str, Case] = {}
    for case in cases:
        if case.identifier in seen:
            raise ValueError(f"Cases {seen[case.identifier].image} and {case.image} both map to identifier "
                             f"{case.identifier!r}; rename one of them or change the layout's '{{id}}' position.")
        seen[case.identifier] = case


def run_conversion(cases: Sequence[Case], job: ConversionJob, num_processes: int,
                   title: str) -> List[CaseResult]:
    """Convert all cases not done yet; write ``conversion_report.json``; return one result per case."""
    check_unique_identifiers(cases)
    folder = job.output_folder
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    results: List[CaseResult] = []
    pending = []
    for case in cases:
        marker = _load_marker(case, job)
        if marker is None:
            pending.append(case)
        else:
            problems = [Problem.from_json(p) for p in marker.get("problems", [])]
            results.append(CaseResult(case.identifier, case.split, True, problems, resumed=True))
    if results:
        logger.info("%s: %d of %d cases already converted, resuming with %d.", title, len(results), len(cases),
                    len(pending))
    results += run_parallel(partial(convert_case, job=job), pending, num_processes, title, _worker_crashed)
    write_problem_report(folder / REPORT_NAME, title, {r.identifier: r.problems for r in results}, len(cases),
                         extra={"converted": sorted(r.identifier for r in results if r.converted),
                                "resumed": sum(r.resumed for r in results)})
    return results
