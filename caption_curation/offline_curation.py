"""Offline decomposition plus RadLex filtering, spread over worker processes for CT-RATE-sized inputs.

Both steps are pure CPU work per report, so chunks of reports go to a process pool; each worker
builds its decomposer once and receives the (already built) filter when the pool starts. Small
inputs run in this process, where starting workers would cost more than it saves.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Optional

from tqdm import tqdm

from caption_curation.captions import CuratedReport, ReportCaptions
from caption_curation.offline_decomposer import OfflineDecomposer
from caption_curation.radlex_filter import RadLexFilter
from caption_curation.reports import Report

CHUNK_REPORTS = 500
MIN_REPORTS_FOR_WORKERS = 4 * CHUNK_REPORTS

_worker: dict = {}


def filter_report(item: ReportCaptions, radlex_filter: RadLexFilter) -> CuratedReport:
    matched = ((caption, radlex_filter.matched_terms(caption.text)) for caption in item.captions)
    kept = [(caption, terms) for caption, terms in matched if terms]
    return CuratedReport(item.report, item.captions, kept, item.failure)


def _start_worker(radlex_filter: RadLexFilter) -> None:
    _worker["filter"] = radlex_filter
    _worker["decomposer"] = OfflineDecomposer()


def _curate_chunk(reports: list[Report]) -> list[CuratedReport]:
    decomposer, radlex_filter = _worker["decomposer"], _worker["filter"]
    return [filter_report(ReportCaptions(report, decomposer.decompose(report)), radlex_filter) for report in reports]


def default_processes() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def curate_offline(
    reports: list[Report], radlex_filter: RadLexFilter, processes: Optional[int] = None
) -> list[CuratedReport]:
    processes = processes or default_processes()
    chunks = [reports[start : start + CHUNK_REPORTS] for start in range(0, len(reports), CHUNK_REPORTS)]
    progress = tqdm(total=len(reports), desc="offline captions + RadLex filter", unit="report")
    curated: list[CuratedReport] = []
    if processes == 1 or len(reports) < MIN_REPORTS_FOR_WORKERS:
        _start_worker(radlex_filter)
        for chunk in chunks:
            curated.extend(_curate_chunk(chunk))
            progress.update(len(chunk))
    else:
        with ProcessPoolExecutor(processes, initializer=_start_worker, initargs=(radlex_filter,)) as pool:
            for chunk_result in pool.map(_curate_chunk, chunks):  # map keeps the report order
                curated.extend(chunk_result)
                progress.update(len(chunk_result))
    progress.close()
    return curated
