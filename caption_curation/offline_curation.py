"""Offline decomposition plus RadLex filtering, spread over worker processes for CT-RATE-sized inputs.

Both steps are pure CPU work per report, so chunks of report texts go to a process pool; each
worker builds its decomposer once and receives the (already built) filter when the pool starts, and
answers with plain tuples, which are cheap to pass back. Small inputs run in this process, where
starting workers would cost more than it saves. Reports are
templated (half of the sentences of the 800 shared CT-RATE reports are repeats), so each worker
matches every distinct caption text against RadLex only once.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterator, Optional, Sequence

from tqdm import tqdm

from caption_curation.captions import Caption, CuratedReport, ReportCaptions
from caption_curation.offline_decomposer import OfflineDecomposer
from caption_curation.radlex_filter import RadLexFilter
from caption_curation.reports import Report

CHUNK_REPORTS = 500
MIN_REPORTS_FOR_WORKERS = 4 * CHUNK_REPORTS
MEMO_CAPTIONS = 1 << 16

_worker: dict = {}


def filter_report(item: ReportCaptions, matched_terms: Callable[[str], Sequence[str]]) -> CuratedReport:
    """Keep the captions for which ``matched_terms`` (e.g. RadLexFilter.matched_terms) finds a term."""
    matched = ((caption, matched_terms(caption.text)) for caption in item.captions)
    kept = [(caption, terms) for caption, terms in matched if terms]
    return CuratedReport(item.report, item.captions, kept, item.failure)


class _MemoisedTerms:
    def __init__(self, radlex_filter: RadLexFilter):
        self._filter = radlex_filter
        self._memo: dict[str, tuple[str, ...]] = {}

    def __call__(self, caption: str) -> tuple[str, ...]:
        terms = self._memo.get(caption)
        if terms is None:
            if len(self._memo) >= MEMO_CAPTIONS:
                self._memo.clear()
            terms = self._memo[caption] = tuple(self._filter.matched_terms(caption))
        return terms


def _start_worker(radlex_filter: RadLexFilter) -> None:
    _worker["matched_terms"] = _MemoisedTerms(radlex_filter)
    _worker["decomposer"] = OfflineDecomposer()


def _curate_chunk(report_texts: list[str]) -> list[tuple[list[Caption], list[tuple[int, tuple[str, ...]]]]]:
    """Per report: its captions and (index, matched terms) of the kept ones. Only plain tuples and strings
    cross the process boundary, which keeps pickling well below the cost of the work itself."""
    decomposer, matched_terms = _worker["decomposer"], _worker["matched_terms"]
    results = []
    for text in report_texts:
        captions = decomposer.decompose(text)
        matched = ((index, matched_terms(caption.text)) for index, caption in enumerate(captions))
        results.append((captions, [(index, terms) for index, terms in matched if terms]))
    return results


def _as_curated(report: Report, result: tuple[list[Caption], list[tuple[int, tuple[str, ...]]]]) -> CuratedReport:
    captions, kept = result
    return CuratedReport(report, captions, [(captions[index], terms) for index, terms in kept])


def default_processes() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _chunk_results(chunks: list[list[str]], radlex_filter: RadLexFilter, processes: int) -> Iterator[list]:
    """_curate_chunk over all chunks, in order; in worker processes unless ``processes`` is 1."""
    if processes == 1:
        _start_worker(radlex_filter)
        yield from map(_curate_chunk, chunks)
        return
    with ProcessPoolExecutor(processes, initializer=_start_worker, initargs=(radlex_filter,)) as pool:
        yield from pool.map(_curate_chunk, chunks)


def curate_offline(
    reports: list[Report], radlex_filter: RadLexFilter, processes: Optional[int] = None
) -> list[CuratedReport]:
    processes = 1 if len(reports) < MIN_REPORTS_FOR_WORKERS else processes or default_processes()
    texts = [report.report_level_text for report in reports]
    chunks = [texts[start : start + CHUNK_REPORTS] for start in range(0, len(texts), CHUNK_REPORTS)]
    results: list = []
    with tqdm(total=len(reports), desc="offline captions + RadLex filter", unit="report") as progress:
        for chunk_result in _chunk_results(chunks, radlex_filter, processes):
            results.extend(chunk_result)
            progress.update(len(chunk_result))
    return [_as_curated(report, result) for report, result in zip(reports, results)]
