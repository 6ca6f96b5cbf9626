"""Benchmark: the whole offline caption curation at CT-RATE scale (50,188 reports), goal <= 120 s on 2 cores.

The reports are built by resampling real report sentences from ../shared/data/ct_rate_reports/train.csv
(findings sentences into findings, impression sentences into impressions, report lengths drawn from
the real ones) and written in the CT-RATE release layout (VolumeName, Findings_EN, Impressions_EN).

Resampling repeats sentences far more often than real reports do (half of the real sentences are
repeats), and the pipeline memoises per distinct sentence and caption. The baseline is therefore the
same run with memoisation switched off, i.e. as if no sentence ever repeated: the worst case.

    python benchmarks/bench_caption_curation.py [--reports 50188]
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from caption_curation import offline_curation, offline_decomposer
from caption_curation.curate import curate_captions
from caption_curation.reports import read_reports
from caption_curation.sentence_splitter import split_sentences

SHARED_DATA = Path(
    os.environ.get("OPENVOCAB_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)
REAL_REPORTS = SHARED_DATA / "ct_rate_reports" / "train.csv"
GOAL_S = 120.0


def resampled_reports(n_reports: int, seed: int = 0) -> pd.DataFrame:
    real = read_reports(REAL_REPORTS).reports
    findings = [split_sentences(report.findings) for report in real]
    impressions = [split_sentences(report.impression) for report in real]
    findings_pool = [s for sentences in findings for s in sentences]
    impression_pool = [s for sentences in impressions for s in sentences] or findings_pool
    rng = random.Random(seed)
    rows = []
    for index in range(n_reports):
        template = rng.randrange(len(real))
        n_findings, n_impression = len(findings[template]), len(impressions[template])
        rows.append(
            {
                "VolumeName": f"train_{index + 1}_a_1.nii.gz",
                "Findings_EN": " ".join(rng.choices(findings_pool, k=n_findings)),
                "Impressions_EN": " ".join(rng.choices(impression_pool, k=n_impression)),
            }
        )
    return pd.DataFrame(rows)


def cpu_seconds() -> float:
    """User + system time of this process and of its finished worker processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_curation(csv_path: Path, out_dir: Path) -> tuple[float, float, object]:
    """(wall s, CPU s, summary); CPU time shows the cost on a machine that other jobs share."""
    start, start_cpu = time.perf_counter(), cpu_seconds()
    summary = curate_captions(csv_path, out_dir)
    return time.perf_counter() - start, cpu_seconds() - start_cpu, summary


def without_memo() -> None:
    """Switch the sentence and caption memos off (read when workers start, so this must precede the run)."""
    offline_decomposer._MEMO_SENTENCES = 0
    offline_curation.MEMO_CAPTIONS = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=50188)
    args = parser.parse_args()
    if not REAL_REPORTS.is_file():
        sys.exit(f"missing {REAL_REPORTS}; set OPENVOCAB_SHARED_DATA to the shared data folder")
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big_csv = tmp / "resampled_reports.csv"
        resampled_reports(args.reports).to_csv(big_csv, index=False)
        wall_s, cpu_s, summary = timed_curation(big_csv, tmp / "memo")
        load = os.getloadavg()[0]
        without_memo()
        baseline_wall_s, baseline_cpu_s, _ = timed_curation(big_csv, tmp / "no_memo")
    print(f"{summary.reports} resampled reports, {summary.captions_before_filter / summary.reports:.1f} captions/report "
          f"before and {summary.captions_kept / summary.reports:.1f} after the RadLex filter")
    print(f"curation             : {wall_s:6.1f} s wall, {cpu_s:6.1f} s CPU")
    print(f"baseline (no memo)   : {baseline_wall_s:6.1f} s wall, {baseline_cpu_s:6.1f} s CPU")
    print(f"ratio baseline/curation: {baseline_wall_s / wall_s:.2f}x wall, {baseline_cpu_s / cpu_s:.2f}x CPU")
    print(f"goal: <= {GOAL_S:.0f} s -> {'MET' if wall_s <= GOAL_S else 'MISSED'} "
          f"(1-min load average {load:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
