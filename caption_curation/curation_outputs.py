"""Write the curation tables, each replaced atomically so a rerun or a crash never leaves half a file.

- ``captions.csv``: one row per kept caption; columns ``volume``, ``caption``, ``matched_terms``
  (RadLex terms joined by ``|``), ``source_sentence``.
- ``manifest.jsonl``: one line per curated report (failed ones are left out),
  ``{"volume": str, "report": str, "captions": [str, ...]}``, read by the contrastive pretraining.
  ``volume`` is the table's volume name, joined to ``volume_root`` when one is given; ``report`` is
  the findings section (the impression when there are no findings); ``captions`` are the kept
  captions and may be empty (every caption filtered out).
- ``failures.jsonl``: one line per report without captions from the LLM,
  ``{"volume": str, "row": int, "reason": str}`` (the raw answer stays in the cache).
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Iterable, Optional

from nnunetv2_openvocab.atomic_files import atomic_write
from caption_curation.captions import CuratedReport

CAPTION_COLUMNS = ("volume", "caption", "matched_terms", "source_sentence")


def volume_path(volume: str, volume_root: Optional[str]) -> str:
    return os.path.join(volume_root, volume) if volume_root else volume


def write_captions_csv(path: Path, curated: Iterable[CuratedReport], volume_root: Optional[str]) -> None:
    with atomic_write(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CAPTION_COLUMNS)
        for item in curated:
            volume = volume_path(item.report.volume, volume_root)
            writer.writerows(
                (volume, caption.text, "|".join(terms), caption.source_sentence) for caption, terms in item.kept
            )


def _json_lines(path: Path, objects: Iterable[dict]) -> None:
    with atomic_write(path) as handle:
        for obj in objects:
            handle.write(json.dumps(obj, ensure_ascii=False) + "\n")


def write_manifest(path: Path, curated: Iterable[CuratedReport], volume_root: Optional[str]) -> None:
    _json_lines(
        path,
        (
            {
                "volume": volume_path(item.report.volume, volume_root),
                "report": item.report.report_level_text,
                "captions": [caption.text for caption, _ in item.kept],
            }
            for item in curated
            if item.failure is None
        ),
    )


def write_failures(path: Path, curated: Iterable[CuratedReport]) -> None:
    _json_lines(
        path,
        (
            {"volume": item.report.volume, "row": item.report.row, "reason": item.failure}
            for item in curated
            if item.failure is not None
        ),
    )
