"""Per-case problems found while converting or merging, and the JSON report that collects them.

An ``error`` means the case was skipped (nothing written for it); a ``warning`` means it was converted and the
message says what was changed or should be looked at. Kinds:

- ``missing_file``: an image, label or structure mask the layout expects is absent;
- ``unreadable``: a file could not be read, or is not a 3D volume;
- ``geometry_mismatch``: image and label grids differ in size or spacing (error), or only in origin/direction,
  in which case the label gets the image's header (warning);
- ``unexpected_label_values``: voxel values that the label table does not list, or non-integer labels;
- ``non_ct_modality``: the image does not look like CT in Hounsfield units (or the dataset marks it non-CT);
- ``overlapping_masks``: per-structure masks claim the same voxel (the later structure in the table wins);
- ``duplicate_scan``: the merge found the same scan in several datasets.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional

from nnunetv2_openvocab.atomic_files import write_json_atomic
from nnunetv2_openvocab.user_errors import UserError

logger = logging.getLogger(__name__)

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    kind: str
    severity: str
    message: str

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Mapping) -> "Problem":
        return cls(obj["kind"], obj["severity"], obj["message"])


class CaseError(Exception):
    """Raised inside per-case work to skip the case with one ``error`` problem."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.problem = Problem(kind, ERROR, message)


def write_problem_report(path: Path, title: str, problems_by_case: Mapping[str, Iterable[Problem]],
                         num_cases: int, extra: Optional[Dict] = None) -> dict:
    """Write ``{title, num_cases, failed, warnings, problem_counts, ...extra}`` and log a one-line summary."""
    failed: Dict[str, List[dict]] = {}
    warnings: Dict[str, List[dict]] = {}
    counts: Counter = Counter()
    for case, problems in sorted(problems_by_case.items()):
        for problem in problems:
            counts[problem.kind] += 1
            target = failed if problem.severity == ERROR else warnings
            target.setdefault(case, []).append(problem.to_json())
    report = {"title": title, "num_cases": num_cases, "num_failed": len(failed), "failed": failed,
              "warnings": warnings, "problem_counts": dict(sorted(counts.items())), **(extra or {})}
    write_json_atomic(path, report)
    if counts:
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        logger.warning("%s: %d of %d cases failed; problems: %s. Details: %s",
                       title, len(failed), num_cases, summary, path)
    else:
        logger.info("%s: %d cases, no problems. Report: %s", title, num_cases, path)
    return report


class CasesFailed(UserError):
    """Some cases could not be converted or merged: the output holds the others, the command exits non-zero."""


def raise_if_cases_failed(report_path: Path) -> None:
    """Raise CasesFailed, naming the count, the kinds and the report, if the report lists failed cases."""
    report = json.loads(report_path.read_text(encoding="utf-8"))
    if report["num_failed"]:
        kinds = sorted({problem["kind"] for problems in report["failed"].values() for problem in problems})
        raise CasesFailed(f"{report['num_failed']} of {report['num_cases']} cases failed and were left out "
                          f"({', '.join(kinds)}; e.g. {sorted(report['failed'])[:3]}); details in {report_path}. "
                          f"The other cases are written. Fix or remove the failed ones and run the command again "
                          f"(finished cases are kept).")
