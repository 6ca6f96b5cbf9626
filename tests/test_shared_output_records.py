"""Issue 22 §8: runs predicting into one output folder at the same time lost each other's cases in
prediction_settings.json (read, merge, write raced). The records are now merged and written under the folder's
fcntl lock; checked with real concurrent processes."""
from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from nnunetv2_openvocab.inference.outputs import run_settings
from nnunetv2_openvocab.inference.outputs.run_settings import SETTINGS_FILE, SHARED_SETTINGS, record_settings
from nnunetv2_openvocab.json_input import read_json_file

RUNS = 8


def _slow_merge(merge):
    """merged_settings with a pause between reading and returning: makes an unlocked race certain."""
    def slow(path, settings):
        merged = merge(path, settings)
        time.sleep(0.2)
        return merged
    return slow


def _one_run(folder: str, case: str) -> None:
    run_settings.merged_settings = _slow_merge(run_settings.merged_settings)
    record_settings(Path(folder), {**dict.fromkeys(SHARED_SETTINGS, "same"),
                                   "cases": {case: {"inputs": [f"{case}.nii.gz"], "prompts": ["liver"]}}})


def test_concurrent_runs_keep_every_case(tmp_path):
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_one_run, args=(str(tmp_path / "out"), f"case_{i}")) for i in range(RUNS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    recorded = read_json_file(tmp_path / "out" / SETTINGS_FILE)
    assert sorted(recorded["cases"]) == [f"case_{i}" for i in range(RUNS)]
