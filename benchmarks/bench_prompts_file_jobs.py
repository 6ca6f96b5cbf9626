"""Issue 22 §9: parse and check a prompts file with 200,000 jobs (distinct case names, one shared image), as
``nnUNetv2_openvocab_predict --prompts-file`` does before predicting. The duplicate-case check was quadratic
(>300 s); the target is under 10 s.

    PYTHONPATH=. python benchmarks/bench_prompts_file_jobs.py [JOBS]
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from nnunetv2_openvocab.inference.prompt_jobs import load_prompts_file


def main(jobs: int = 200_000) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "ct_0000.nii.gz").write_bytes(b"")
        path = Path(folder) / "jobs.json"
        path.write_text(json.dumps({"jobs": [{"image": "ct_0000.nii.gz", "case": f"case_{i:06d}",
                                              "prompts": ["liver", "renal organs"]} for i in range(jobs)]}))
        started = time.perf_counter()
        parsed = load_prompts_file(path, ".nii.gz", ("liver",))
        elapsed = time.perf_counter() - started
    print(f"{len(parsed)} jobs parsed and checked in {elapsed:.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
