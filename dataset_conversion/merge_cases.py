"""Merging, step 3: write one merged case (image linked, label map rewritten, done-marker last; resumable).

Duplicate groups unite their labels by ``label_harmonisation.union_duplicate_labels``; a failed case leaves
no file behind and is reported instead.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import FrozenSet, List, Set, Tuple

import numpy as np

from dataset_conversion.case_conversion import CHANNEL_SUFFIX, FILE_ENDING
from dataset_conversion.label_harmonisation import HarmonisedLabels, NameSet, union_duplicate_labels
from dataset_conversion.merge_sources import MergedCase
from dataset_conversion.problems import ERROR, WARNING, CaseError, Problem
from dataset_conversion.volume_checks import array_like, label_array, read_volume, write_volume_atomic
from nnunetv2_openvocab.atomic_files import link_or_copy_atomic, write_json_atomic

STATE_DIR = ".merge"


@dataclass(frozen=True)
class MergeJob:
    output_folder: Path
    harmonised: HarmonisedLabels
    compatible: FrozenSet[FrozenSet[str]]  # label pairs one voxel may carry (taxonomy part-of / lesion-in-organ)
    fingerprint: str


def _marker_path(folder: Path, identifier: str) -> Path:
    return folder / STATE_DIR / "done" / f"{identifier}.json"


def _outputs(folder: Path, identifier: str) -> Tuple[Path, Path]:
    return (folder / "imagesTr" / f"{identifier}{CHANNEL_SUFFIX}{FILE_ENDING}",
            folder / "labelsTr" / f"{identifier}{FILE_ENDING}")


def _united_labels(case: MergedCase, harmonised: HarmonisedLabels, compatible: FrozenSet[FrozenSet[str]]):
    """(merged label values, annotated names, table, conflicting voxels, kept label image), duplicates united."""
    kept = case.members[0]
    label_image = read_volume(kept.label, "Label")
    merged = harmonised.lookup_table(kept.source_index)[label_array(label_image, kept.label)]
    annotated: Set[str] = set(kept.annotated)
    conflicts = 0
    for other in case.members[1:]:
        other_values = harmonised.lookup_table(other.source_index)[
            label_array(read_volume(other.label, "Label"), other.label)]
        merged, annotated, harmonised, n = union_duplicate_labels(merged, annotated, other_values,
                                                                  set(other.annotated), harmonised, compatible)
        conflicts += n
    return merged, annotated, harmonised, conflicts, label_image


def extra_classes(case: MergedCase, harmonised: HarmonisedLabels, compatible: FrozenSet[FrozenSet[str]]
                  ) -> List[NameSet]:
    """Label name sets that uniting this duplicate group creates (read-only pre-pass before writing)."""
    try:
        grown = _united_labels(case, harmonised, compatible)[2]
    except CaseError:
        return []  # reported when the case is written
    return list(grown.atomic_classes[len(harmonised.atomic_classes):])


def merge_case(case: MergedCase, job: MergeJob) -> dict:
    """Write one merged case; returns its marker ``{identifier, annotated, members, problems}``."""
    marker_path = _marker_path(job.output_folder, case.identifier)
    image_dest, label_dest = _outputs(job.output_folder, case.identifier)
    if marker_path.is_file() and image_dest.is_file() and label_dest.is_file():
        marker = json.loads(marker_path.read_text(encoding="utf-8"))
        if marker.get("fingerprint") == job.fingerprint:
            return marker
    try:
        merged, annotated, table, conflicts, label_image = _united_labels(case, job.harmonised, job.compatible)
        if table is not job.harmonised:
            raise RuntimeError("label classes missing from the pre-pass; re-run the merge")
        link_or_copy_atomic(case.members[0].image, image_dest)
        write_volume_atomic(array_like(merged.astype(np.uint8 if merged.max() < 256 else np.uint16), label_image),
                            label_dest)
    except CaseError as err:
        problem = err.problem
    except Exception as err:  # one bad case must not end the merge; the report keeps the message
        problem = Problem("conversion_error", ERROR, f"Merging {case.identifier} failed: {type(err).__name__}: {err}")
    else:
        problems = []
        if len(case.members) > 1:
            problems.append(Problem("duplicate_scan", WARNING, f"{case.identifier} is the same scan as "
                                    f"{[m.source_case for m in case.members[1:]]}; labels united by the duplicate rule "
                                    f"({conflicts} conflicting voxels kept from the earlier dataset)."))
        marker = {"identifier": case.identifier, "fingerprint": job.fingerprint, "annotated": sorted(annotated),
                  "members": [f"{m.source_index}:{m.source_case}" for m in case.members],
                  "conflict_voxels": conflicts, "problems": [p.to_json() for p in problems]}
        write_json_atomic(marker_path, marker)
        return marker
    for path in (image_dest, label_dest, marker_path):  # a failed case leaves nothing nnU-Net could pick up
        if path.exists():
            path.unlink()
    return {"identifier": case.identifier, "failed": True, "problems": [problem.to_json()]}


def merge_crashed(case: MergedCase, err: BaseException) -> dict:
    problem = Problem("conversion_error", ERROR, f"Worker merging {case.identifier} died: {type(err).__name__}: "
                                                 f"{err}. Re-run to retry.")
    return {"identifier": case.identifier, "failed": True, "problems": [problem.to_json()]}
