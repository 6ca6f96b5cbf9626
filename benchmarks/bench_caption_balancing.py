"""Benchmark: caption yield of selective captioning (findings, RadLex matching, MetaCLIP balancing).

Runs the offline curation on the 800 real CT-RATE reports (../shared/data/ct_rate_reports/train.csv) against
the full RadLex term list (../shared/data/radlex/tekram_Radlex_2017.csv) and the shipped default list, each
without balancing (the baseline) and with balancing at the default t and at the t values of --sweep. Prints
raw, matched and kept captions per report (mean, median), reports left without captions (pretraining then
samples their findings), the share of negated captions, and for the
default run the kept share of the 20 most matched terms.

Goal (issue 13 §6): a median of 2 to 5 kept captions per report (the paper: 7 raw, 3 kept), negations
kept, and no kept caption without a RadLex term.

    python benchmarks/bench_caption_balancing.py [--sweep 5 10 20 40]
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from caption_curation.balancing import BalanceSettings
from caption_curation.curate import STATS_FILE, curate_captions

SHARED_DATA = Path(
    os.environ.get("OPENVOCAB_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)
REAL_REPORTS = SHARED_DATA / "ct_rate_reports" / "train.csv"
TERM_LISTS = {"full RadLex": SHARED_DATA / "radlex" / "tekram_Radlex_2017.csv", "shipped default": None}
GOAL_MEDIAN = (2.0, 5.0)


def run(out: Path, radlex, balance) -> tuple[dict, float, bool]:
    """(caption_stats.json, seconds, every kept caption names a RadLex term)."""
    start = time.perf_counter()
    curate_captions(REAL_REPORTS, out, radlex=radlex, balance=balance)
    seconds = time.perf_counter() - start
    with open(out / "captions.csv", newline="", encoding="utf-8") as handle:
        all_matched = all(row["matched_terms"] for row in csv.DictReader(handle))
    return json.loads((out / STATS_FILE).read_text(encoding="utf-8")), seconds, all_matched


def row(name: str, stats: dict, seconds: float, all_matched: bool) -> str:
    per_report = stats["captions_per_report"]
    balancing = stats["balancing"]
    matched = balancing["matched_captions_per_report"] if balancing else per_report["after_filter"]
    kept = per_report["after_filter"]
    negated = balancing["negated_share"] if balancing else {"raw": "-", "kept": "-"}
    in_goal = GOAL_MEDIAN[0] <= kept["median"] <= GOAL_MEDIAN[1]
    return (f"| {name} | {balancing['t'] if balancing else 'off'} | {per_report['before_filter']['mean']:.2f} / "
            f"{per_report['before_filter']['median']:g} | {matched['mean']:.2f} / {matched['median']:g} | "
            f"{kept['mean']:.2f} / {kept['median']:g} | {stats['reports_without_kept_captions']} | "
            f"{negated['raw']} -> {negated['kept']} | "
            f"{'yes' if all_matched else 'NO'} | {'yes' if in_goal else 'no'} | {seconds:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", type=int, nargs="*", default=[5, 20, 40], help="further t values to try")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the input-problem warnings repeat per run
    print("| term list | t | raw mean / median | matched mean / median | kept mean / median | reports keeping none | "
          "negated share raw -> kept | all kept name a term | median in 2-5 | s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |")
    default_stats = None
    with tempfile.TemporaryDirectory() as tmp:
        for list_name, radlex in TERM_LISTS.items():
            settings = [("off", None), ("default", BalanceSettings())]
            settings += [(str(t), BalanceSettings(t)) for t in args.sweep]
            for label, balance in settings:
                stats, seconds, all_matched = run(Path(tmp) / f"{list_name}-{label}", radlex, balance)
                print(row(list_name, stats, seconds, all_matched), flush=True)
                if list_name == "full RadLex" and label == "default":
                    default_stats = stats
    balancing = default_stats["balancing"]
    print(f"\nfull RadLex, default t = {balancing['t']} ({balancing['t_rule']}), seed {balancing['seed']}: "
          f"kept share of the top {len(balancing['top_terms'])} terms")
    print("| term | matched captions | kept | kept share |")
    print("| --- | ---: | ---: | ---: |")
    for entry in balancing["top_terms"]:
        print(f"| {entry['term']} | {entry['matched']} | {entry['kept']} | {entry['kept_share']:.3f} |")
    source = default_stats["caption_source"]
    print(f"\ncaption input: {source['findings']} reports from their findings, {source['impression']} from the "
          "impression (no findings)")


if __name__ == "__main__":
    main()
