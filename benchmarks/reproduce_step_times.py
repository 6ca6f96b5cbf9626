"""Time of each step of a ``nnUNetv2_openvocab_reproduce --scale smoke`` run folder, from its done markers.

Run the table first, with the machine's load noted (``uptime``), e.g.
    /usr/bin/time -v nice -n 5 nnUNetv2_openvocab_reproduce --table VIII --scale smoke --out RUN --reports REPORTS
then ``python benchmarks/reproduce_step_times.py RUN`` prints a markdown table (seconds per step and per kind, and the
total) for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from nnunetv2_openvocab.reproduction.steps import STEP_FOLDER


def main(run_folder: str) -> None:
    paths = sorted((Path(run_folder) / STEP_FOLDER).glob("*.json"), key=lambda path: path.stat().st_mtime)
    markers = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
    by_kind = defaultdict(float)
    print("| step | seconds |\n| --- | ---: |")
    for marker in markers:
        print(f"| {marker['label']} | {marker['seconds']:.0f} |")
        by_kind[(marker["command"] or ["library"])[0]] += marker["seconds"]
    print("\n| kind | seconds |\n| --- | ---: |")
    for kind, seconds in sorted(by_kind.items(), key=lambda item: -item[1]):
        print(f"| {kind} | {seconds:.0f} |")
    print(f"\ntotal: {sum(by_kind.values()) / 60:.1f} min over {len(markers)} steps")


if __name__ == "__main__":
    main(sys.argv[1])
