"""Caption records: what a decomposer makes of one report, and what the RadLex filter keeps of it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional, Sequence

from caption_curation.reports import Report


class Caption(NamedTuple):
    """A tuple, not a dataclass: a 50k-report run makes about a million, and passes them between processes."""

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
    kept: list[tuple[Caption, Sequence[str]]]  # (caption, matched RadLex terms), in decomposer order
    failure: Optional[str] = None
