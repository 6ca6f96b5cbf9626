"""README table + PNG: peak device memory per Table VIII row and stage at --preset paper, from the estimator.

    PYTHONPATH=. python benchmarks/paper_memory_table.py --out benchmarks/paper_memory

writes paper_memory.md (the table) and paper_memory.png; each estimate runs on fake tensors (seconds to
about a minute on a loaded CPU, nothing allocated) and is kept in paper_memory.json, so a rerun computes only
the missing ones. Assumptions: nnunetv2_openvocab/memory_estimate/paper_table.py.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nnunetv2_openvocab.memory_estimate.live_bytes import GIB, fake_peak  # noqa: E402
from nnunetv2_openvocab.memory_estimate.paper_table import (GPU_SIZES_GB, fits, inference_host_gib,  # noqa: E402
                                                            paper_estimates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/paper_memory")
    out = Path(parser.parse_args().out)
    torch.set_num_threads(1)
    done_file = out.with_suffix(".json")
    done = json.loads(done_file.read_text()) if done_file.is_file() else {}
    rows = []
    for estimate in paper_estimates():
        key = f"{estimate.rows} | {estimate.stage} | {estimate.flags}"
        if key not in done:
            start = time.perf_counter()
            done[key] = [fake_peak(estimate.block) / GIB, time.perf_counter() - start]
            done_file.write_text(json.dumps(done, indent=1, ensure_ascii=False))
        rows.append((estimate, *done[key]))
        print(f"{key} | {rows[-1][1]:.1f} GiB | {rows[-1][2]:.0f} s", flush=True)
    lines = ["| rows | stage | flags | peak GiB | fits GPU (GB) | estimate took |", "| --- | --- | --- | ---: | --- | ---: |"]
    lines += [f"| {e.rows} | {e.stage} | {e.flags or '-'} | {peak:.1f} | {fits(peak)} | {seconds:.0f} s |"
              for e, peak, seconds in rows]
    lines.append(f"\nInference also holds {inference_host_gib():.1f} GiB of blended sums in host memory.")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    labels = [f"{e.rows} {e.stage.split(' (')[0]} {e.flags}".strip() for e, _, _ in rows]
    figure, axes = plt.subplots(figsize=(11, 0.38 * len(rows) + 1.5))
    axes.barh(range(len(rows)), [peak for _, peak, _ in rows], color="tab:blue")
    for size in GPU_SIZES_GB:
        axes.axvline(size * 1e9 / GIB, color="tab:red", linestyle="--", linewidth=1)
        axes.text(size * 1e9 / GIB, -0.9, f"{size} GB", color="tab:red", ha="center", fontsize=8)
    axes.set_yticks(range(len(rows)), labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("estimated peak device memory per process (GiB, log scale)")
    axes.set_title("--preset paper, STU-Net L: 220^3 pretraining (batch 32), 128^3 training")
    figure.tight_layout()
    figure.savefig(out.with_suffix(".png"), dpi=110)


if __name__ == "__main__":
    main()
