"""CT-RATE (CC BY-NC-SA 4.0) chest CTs with reports -> pretraining manifest (JSON lines).

Manifest format (shared with caption curation; read by the contrastive pretraining), one object per line::

    {"volume": "/abs/path/train_1_a_1.nii.gz", "report": "Findings: ...\\nImpression: ...", "captions": []}

Native layout (Hugging Face ibrahimhamamci/CT-RATE, 'dataset' folder; not re-checked against a full download)::

    train/train_1/train_1_a/train_1_a_1.nii.gz         <split>/<patient>/<study>/<volume>
    valid/valid_1/valid_1_a/valid_1_a_1.nii.gz
    radiology_text_reports/train_reports.csv           VolumeName, ..., Findings_EN, Impressions_EN
    radiology_text_reports/validation_reports.csv

Volumes are referenced, not copied. A report row whose volume file is missing, or whose findings and impression are
both empty, is left out and listed in ``<manifest>.report.json``. With ``check_volumes`` every volume is also read
and must be a 3D CT in Hounsfield units (slow on the full 50,188 volumes; uses ``num_processes``).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import List, Optional, Tuple

import pandas as pd

from dataset_conversion.converter import default_num_processes
from nnunetv2_openvocab.atomic_files import write_text_atomic
from dataset_conversion.parallel import run_parallel
from dataset_conversion.problems import ERROR, CaseError, Problem, write_problem_report
from dataset_conversion.volume_checks import check_looks_like_ct, read_volume

logger = logging.getLogger(__name__)

SPLITS = {"train": ("train", "radiology_text_reports/train_reports.csv"),
          "valid": ("valid", "radiology_text_reports/validation_reports.csv")}
VOLUME_COLUMN, FINDINGS_COLUMN, IMPRESSION_COLUMN = "VolumeName", "Findings_EN", "Impressions_EN"


@dataclass(frozen=True)
class ManifestRow:
    volume_name: str
    volume: Path
    report: str


def volume_path(volumes_folder: Path, volume_name: str) -> Path:
    """'train_1_a_1.nii.gz' -> <volumes_folder>/train_1/train_1_a/train_1_a_1.nii.gz."""
    parts = volume_name.split("_")
    return volumes_folder / "_".join(parts[:2]) / "_".join(parts[:3]) / volume_name


def report_text(findings: str, impression: str) -> str:
    sections = [f"{title}: {text.strip()}" for title, text in (("Findings", findings), ("Impression", impression))
                if text and text.strip()]
    return "\n".join(sections)


def read_report_rows(native_folder: Path, split: str) -> List[ManifestRow]:
    folder, csv_name = SPLITS[split]
    csv_path = native_folder / csv_name
    if not csv_path.is_file():
        raise FileNotFoundError(f"Report table {csv_path} not found; -i must be CT-RATE's 'dataset' folder "
                                f"(with {csv_name}).")
    reports = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    missing = [c for c in (VOLUME_COLUMN, FINDINGS_COLUMN, IMPRESSION_COLUMN) if c not in reports.columns]
    if missing:
        raise ValueError(f"{csv_path} lacks the columns {missing} (found {list(reports.columns)}).")
    return [ManifestRow(row[VOLUME_COLUMN], volume_path(native_folder / folder, row[VOLUME_COLUMN]),
                        report_text(row[FINDINGS_COLUMN], row[IMPRESSION_COLUMN]))
            for _, row in reports.iterrows()]


def check_row(row: ManifestRow, read_volumes: bool) -> Tuple[str, Optional[Problem]]:
    """(volume name, problem or None) for one report row."""
    try:
        if not row.report:
            raise CaseError("empty_report", f"{row.volume_name} has neither findings nor impression text.")
        if not row.volume.is_file():
            raise CaseError("missing_file", f"Volume {row.volume} of report {row.volume_name} does not exist.")
        if read_volumes:
            check_looks_like_ct(read_volume(row.volume, "Volume"), row.volume)
    except CaseError as err:
        return row.volume_name, err.problem
    return row.volume_name, None


def _crashed(row: ManifestRow, err: BaseException) -> Tuple[str, Problem]:
    return row.volume_name, Problem("conversion_error", ERROR, f"Checking {row.volume} failed: "
                                                               f"{type(err).__name__}: {err}")


def report_path(manifest_path: Path) -> Path:
    return manifest_path.with_suffix(".report.json")


def convert(native_folder: Path, manifest_path: Path, split: str = "train", check_volumes: bool = False,
            num_processes: Optional[int] = None) -> Path:
    """Write the manifest (atomically) and ``<manifest>.report.json``; return the manifest path."""
    if split not in SPLITS:
        raise ValueError(f"Unknown CT-RATE split {split!r}; choose one of {sorted(SPLITS)}.")
    rows = read_report_rows(Path(native_folder), split)
    # without check_volumes the checks are file look-ups: one process is fastest
    processes = (num_processes or default_num_processes()) if check_volumes else 1
    problems = dict(run_parallel(partial(check_row, read_volumes=check_volumes), rows, processes,
                                 f"Checking CT-RATE {split}", _crashed))
    lines = [json.dumps({"volume": str(row.volume.resolve()), "report": row.report, "captions": []})
             for row in rows if problems[row.volume_name] is None]
    manifest_path = Path(manifest_path)
    write_text_atomic(manifest_path, "".join(line + "\n" for line in lines))
    write_problem_report(report_path(manifest_path), f"CT-RATE {split} manifest",
                         {name: [p] for name, p in problems.items() if p}, len(rows), extra={"written": len(lines)})
    logger.info("Wrote %d of %d CT-RATE %s reports to %s.", len(lines), len(rows), split, manifest_path)
    return manifest_path
