"""Benchmark: RadLex-filter 350,000 captions (50k reports x 7) against the full ~45k-term RadLex list.

Goal: <= 30 s on 2 cores, automaton build included. Baseline: the naive loop that tests every term
against every caption (plain substring test, no word boundaries, so it is cheaper than the real
check), measured on a sample and projected to all captions; the ratio compares seconds per caption.
The captions are the offline decomposer's captions of the 800 real reports, resampled to 350,000.

    python benchmarks/bench_radlex_filter.py [--captions 350000] [--naive-sample 300]
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

from caption_curation.offline_decomposer import OfflineDecomposer
from caption_curation.radlex_filter import RadLexFilter
from caption_curation.radlex_terms import load_radlex_terms
from caption_curation.reports import read_reports

SHARED_DATA = Path(
    os.environ.get("OPENVOCAB_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)
REAL_REPORTS = SHARED_DATA / "ct_rate_reports" / "train.csv"
FULL_RADLEX = SHARED_DATA / "radlex" / "tekram_Radlex_2017.csv"
GOAL_S = 30.0


def real_captions() -> list[str]:
    decomposer = OfflineDecomposer()
    reports = read_reports(REAL_REPORTS).reports
    return [caption.text for report in reports for caption in decomposer.decompose(report.text)]


def naive_matches(caption: str, lowered_terms: list[str]) -> list[str]:
    lowered = caption.lower()
    return [term for term in lowered_terms if term in lowered]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captions", type=int, default=350_000)
    parser.add_argument("--naive-sample", type=int, default=300)
    args = parser.parse_args()
    if not (REAL_REPORTS.is_file() and FULL_RADLEX.is_file()):
        sys.exit(f"missing {REAL_REPORTS} or {FULL_RADLEX}; set OPENVOCAB_SHARED_DATA to the shared data folder")
    pool = real_captions()
    captions = random.Random(0).choices(pool, k=args.captions)
    terms = load_radlex_terms(FULL_RADLEX)

    start, start_cpu = time.perf_counter(), time.process_time()
    radlex_filter = RadLexFilter(terms)
    build_s = time.perf_counter() - start
    kept = sum(1 for caption in captions if radlex_filter.matched_terms(caption))
    automaton_s, automaton_cpu_s = time.perf_counter() - start, time.process_time() - start_cpu

    sample = captions[: args.naive_sample]
    lowered_terms = [term.lower() for term in terms]
    start = time.perf_counter()
    for caption in sample:
        naive_matches(caption, lowered_terms)
    naive_per_caption = (time.perf_counter() - start) / len(sample)
    automaton_per_caption = (automaton_s - build_s) / len(captions)

    print(f"{len(captions)} captions (from {len(pool)} real ones), {len(terms)} RadLex terms")
    print(f"automaton: {automaton_s:.1f} s total ({automaton_cpu_s:.1f} s CPU; {build_s:.1f} s build), "
          f"{1e6 * automaton_per_caption:.1f} us/caption, {kept / len(captions):.1%} kept")
    print(f"naive loop: {1e3 * naive_per_caption:.1f} ms/caption on {len(sample)} captions -> "
          f"{naive_per_caption * len(captions) / 60:.0f} min projected for all")
    print(f"speed-up per caption: {naive_per_caption / automaton_per_caption:.0f}x; "
          f"whole run incl. build: {naive_per_caption * len(captions) / automaton_s:.0f}x")
    print(f"goal: <= {GOAL_S:.0f} s -> {'MET' if automaton_s <= GOAL_S else 'MISSED'} "
          f"(1-min load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
