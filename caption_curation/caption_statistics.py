"""Corpus statistics of a curation run (the numbers behind the paper's Fig. 1b/1c), as a JSON-ready dict.

Keys: ``reports``, ``failed_reports``, ``reports_without_kept_captions``, ``captions_per_report``
(``before_filter`` / ``after_filter``: mean, median, min, max and a histogram {count: reports},
over the reports that did not fail), ``filter_keep_rate``, ``top_captions`` (``caption``,
``count``; captions compared case- and full-stop-insensitively) and ``top_organs`` (``organ``,
``captions``: kept captions naming it, ``fraction``: share of kept captions) and ``caption_source``
(reports captioned from their findings, and those captioned from the impression because they have no findings).
"""
from __future__ import annotations

import statistics
from collections import Counter
from typing import Iterable

from caption_curation.anatomy_tagger import AnatomyTagger
from caption_curation.captions import CuratedReport


def count_summary(counts: list[int]) -> dict:
    if not counts:
        return {"mean": 0.0, "median": 0.0, "min": 0, "max": 0, "histogram": {}}
    histogram = Counter(counts)
    return {
        "mean": round(statistics.fmean(counts), 3),
        "median": float(statistics.median(counts)),
        "min": min(counts),
        "max": max(counts),
        "histogram": {str(k): histogram[k] for k in sorted(histogram)},
    }


def _caption_key(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(" .")


def caption_statistics(
    curated: Iterable[CuratedReport], tagger: AnatomyTagger, top_captions: int = 100, top_organs: int = 20
) -> dict:
    curated = list(curated)
    succeeded = [item for item in curated if item.failure is None]
    caption_counts: Counter = Counter()
    display_form: dict[str, str] = {}
    for item in succeeded:
        for caption, _ in item.kept:
            key = _caption_key(caption.text)
            caption_counts[key] += 1
            display_form.setdefault(key, caption.text.rstrip(" ."))
    kept_total = sum(caption_counts.values())
    organ_counts: Counter = Counter()
    for key, count in caption_counts.items():  # reports repeat template sentences: tag each text once
        for organ in tagger.organs(key):
            organ_counts[organ] += count
    raw_total = sum(len(item.raw_captions) for item in succeeded)
    impression_only = [item.report.volume for item in curated if item.report.caption_source == "impression"]
    return {
        "reports": len(curated),
        "failed_reports": len(curated) - len(succeeded),
        "reports_without_kept_captions": sum(1 for item in succeeded if not item.kept),
        "captions_per_report": {
            "before_filter": count_summary([len(item.raw_captions) for item in succeeded]),
            "after_filter": count_summary([len(item.kept) for item in succeeded]),
        },
        "filter_keep_rate": round(kept_total / raw_total, 4) if raw_total else 0.0,
        "top_captions": [
            {"caption": display_form[key], "count": count} for key, count in caption_counts.most_common(top_captions)
        ],
        "top_organs": [
            {"organ": organ, "captions": count, "fraction": round(count / kept_total, 4)}
            for organ, count in organ_counts.most_common(top_organs)
        ],
        "caption_source": {
            "findings": len(curated) - len(impression_only),
            "impression": len(impression_only),
            "impression_volumes": impression_only,
        },
    }
