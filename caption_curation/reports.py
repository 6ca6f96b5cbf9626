"""Read radiology reports from the two CSV layouts this project meets.

- CT-RATE release (``train_reports.csv``/``validation_reports.csv``): ``VolumeName``, ``Findings_EN``,
  ``Impressions_EN`` (further columns are ignored);
- the shared excerpt (``shared/data/ct_rate_reports/train.csv``): ``AccessionNo`` and ``report_text``,
  where the impression follows a lone ``"`` (written ``""`` inside the quoted CSV field).

Problems with single rows (no volume name, empty findings or impression, a repeated volume) are
collected as messages naming the row, not raised: one bad row must not stop a 50k-report run.
A row without any report text, or without a volume name, is skipped.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

_CT_RATE_COLUMNS = ("VolumeName", "Findings_EN", "Impressions_EN")
_EXCERPT_COLUMNS = ("AccessionNo", "report_text")
IMPRESSION_SEPARATOR = '"'


@dataclass(frozen=True)
class Report:
    volume: str
    findings: str
    impression: str
    row: int  # 1-based data row in the CSV (header excluded), for messages

    @property
    def text(self) -> str:
        """Findings and impression: the report's identity (content hash, sharding)."""
        return "\n".join(part for part in (self.findings, self.impression) if part)

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def report_level_text(self) -> str:
        """What the captions are made from and the pretraining pairs with the whole volume: the findings (the
        paper's choice), else the impression."""
        return self.findings or self.impression

    @property
    def caption_source(self) -> str:
        """The section ``report_level_text`` comes from: "findings", or "impression" when there are none."""
        return "findings" if self.findings else "impression"


@dataclass
class ReadResult:
    reports: list[Report]
    problems: list[str]


def _clean(value) -> str:
    return " ".join(str(value).split()) if isinstance(value, str) else ""


def split_findings_and_impression(report_text: str) -> tuple[str, str]:
    """Findings before the first lone-quote separator, impression after it (empty when there is none)."""
    findings, _, impression = report_text.partition(IMPRESSION_SEPARATOR)
    return _clean(findings), _clean(impression.replace(IMPRESSION_SEPARATOR, " "))


def _rows_as_fields(table: pd.DataFrame, csv_path: Path) -> list[tuple[str, str, str]]:
    """(volume, findings, impression) per row, whichever layout the file has."""
    if all(column in table.columns for column in _CT_RATE_COLUMNS):
        return [
            (_clean(volume), _clean(findings), _clean(impression))
            for volume, findings, impression in zip(*(table[column] for column in _CT_RATE_COLUMNS))
        ]
    if all(column in table.columns for column in _EXCERPT_COLUMNS):
        rows = []
        for volume, text in zip(table["AccessionNo"], table["report_text"]):
            rows.append((_clean(volume), *split_findings_and_impression(text if isinstance(text, str) else "")))
        return rows
    raise ValueError(
        f"{csv_path}: unknown report table; expected columns {list(_CT_RATE_COLUMNS)} (CT-RATE release) or "
        f"{list(_EXCERPT_COLUMNS)} (report_text with the impression after a '\"' separator), "
        f"found {list(table.columns)}"
    )


def read_reports(csv_path: str | Path) -> ReadResult:
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"report table {csv_path} does not exist; pass --reports with a CT-RATE reports CSV")
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False, na_values=[""])
    reports: list[Report] = []
    problems: list[str] = []
    seen_volumes: set[str] = set()
    for row, (volume, findings, impression) in enumerate(_rows_as_fields(table, csv_path), start=1):
        where = f"{csv_path.name} row {row}" + (f" ({volume})" if volume else "")
        if not volume:
            problems.append(f"{where}: no volume name; row skipped")
            continue
        if volume in seen_volumes:
            problems.append(f"{where}: volume name repeated; later row skipped")
            continue
        if not findings and not impression:
            problems.append(f"{where}: findings and impression are both empty; row skipped")
            continue
        if not findings:
            problems.append(f"{where}: findings empty; using the impression only")
        if not impression:
            problems.append(f"{where}: impression empty")
        seen_volumes.add(volume)
        reports.append(Report(volume=volume, findings=findings, impression=impression, row=row))
    return ReadResult(reports=reports, problems=problems)
