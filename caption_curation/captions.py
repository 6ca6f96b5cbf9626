"""What a decomposer returns for one report."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from caption_curation.reports import Report


@dataclass(frozen=True)
class Caption:
    text: str
    source_sentence: str  # the report text the caption was made from ("" if the LLM did not say)


@dataclass
class ReportCaptions:
    report: Report
    captions: list[Caption] = field(default_factory=list)
    failure: Optional[str] = None  # why no captions could be made (LLM backend), None on success


@dataclass
class CuratedReport:
    """A report after decomposition and RadLex filtering."""

    report: Report
    raw_captions: list[Caption]
    kept: list[tuple[Caption, list[str]]]  # (caption, matched RadLex terms), in decomposer order
    failure: Optional[str] = None
