"""Tables IX/X at smoke scale: time each generated command (convert, eval_transfer) on the FLARE22 and SegTHOR
replicas of the bundled CT with a trained model, and print the paper-layout tables.

    PYTHONPATH=. python benchmarks/bench_transfer_smoke.py MODEL_FOLDER OUT
(MODEL_FOLDER e.g. /work/cache/model990/results/Dataset990_OpenVocabExample/<trainer>__<plans>__3d_fullres)
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from nnunetv2_openvocab.evaluation.transfer_tables import prepare_smoke_inputs, run_folder, transfer_commands


def main() -> None:
    model, out = sys.argv[1], Path(sys.argv[2])
    load = os.getloadavg()[0]
    for table in ("IX", "X"):
        prepare_smoke_inputs(table, out)
        for command in transfer_commands(table, "smoke", out, model):
            module = "nnunetv2_openvocab.commands." + command[0].replace("nnUNetv2_openvocab_", "")
            start, cpu = time.perf_counter(), os.times()
            subprocess.run([sys.executable, "-m", module, *command[1:]], check=True, capture_output=True)
            after = os.times()
            print(f"table {table} {command[0]}: {time.perf_counter() - start:.1f} s wall, "
                  f"{after.children_user + after.children_system - cpu.children_user - cpu.children_system:.1f} s CPU")
        print((run_folder(table, out) / f"table_{table}.md").read_text(encoding="utf-8"))
    print(f"load average at start {load:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
