"""Benchmark: the whole offline caption curation at CT-RATE scale (50,188 reports), goal <= 120 s on 2 cores.

The reports are built by resampling real report sentences from ../shared/data/ct_rate_reports/train.csv
(findings sentences into findings, impression sentences into impressions, report lengths drawn from
the real ones) and written in the CT-RATE release layout (VolumeName, Findings_EN, Impressions_EN).
The baseline is the same run on the 800 real reports, scaled per report.

    python benchmarks/bench_caption_curation.py [--reports 50188]
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

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


def timed_curation(csv_path: Path, out_dir: Path) -> tuple[float, object]:
    start = time.perf_counter()
    summary = curate_captions(csv_path, out_dir)
    return time.perf_counter() - start, summary


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
        baseline_s, baseline = timed_curation(REAL_REPORTS, tmp / "real")
        big_s, big = timed_curation(big_csv, tmp / "big")
    per_report_baseline = baseline_s / baseline.reports
    per_report_big = big_s / big.reports
    print(f"real reports      : {baseline.reports:6d} in {baseline_s:6.1f} s ({1e3 * per_report_baseline:.2f} ms/report)")
    print(f"resampled reports : {big.reports:6d} in {big_s:6.1f} s ({1e3 * per_report_big:.2f} ms/report), "
          f"{big.captions_before_filter / big.reports:.1f} captions/report before, "
          f"{big.captions_kept / big.reports:.1f} after the RadLex filter")
    print(f"per-report cost ratio (real run / scaled run): {per_report_baseline / per_report_big:.2f}x "
          "(fixed start-up cost amortised)")
    print(f"goal: <= {GOAL_S:.0f} s for {args.reports} reports -> {'MET' if big_s <= GOAL_S else 'MISSED'}")


if __name__ == "__main__":
    main()
