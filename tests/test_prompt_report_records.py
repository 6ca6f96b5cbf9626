"""Issue 22 §8: the prompt report covers every case of its output folder. It kept only the last run's presence
(also when runs followed each other), and after ``kill -9`` plus ``--continue_prediction`` it dropped the cases
skipped as done. Each finished case's results are now recorded in prediction_settings.json under the folder's lock
and the report is rebuilt from all records; checked with real processes, and a real kill -9."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import SimpleITK as sitk

from nnunetv2_openvocab.example_dataset import EXAMPLE_CT
from nnunetv2_openvocab.inference.outputs.run_settings import (SETTINGS_FILE, SHARED_SETTINGS, record_case_results,
                                                               record_settings, recorded_results)
from nnunetv2_openvocab.json_input import read_json_file
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name

FAST = ["-f", "all", "--disable_tta", "-device", "cpu", "-step_size", "1", "--disable_progress_bar"]
RUNS = 6
ANSWER = {"voxels": 7, "max_probability": 0.99, "mean_probability": 0.95, "status": "present"}


def slabs(folder: Path, names_and_first_slices) -> Path:
    """48-slice slabs of the real CT (9 tiles each), one case per name."""
    folder.mkdir(parents=True, exist_ok=True)
    ct = sitk.ReadImage(str(EXAMPLE_CT))
    for name, first in names_and_first_slices:
        sitk.WriteImage(ct[:, :, first:first + 48], str(folder / f"{name}_0000.nii.gz"))
    return folder


def report_of(folder: Path) -> dict:
    return json.loads((folder / "prompt_report.json").read_text(encoding="utf-8"))


def _record_one(folder: str, case: str) -> None:
    record_settings(Path(folder), {**dict.fromkeys(SHARED_SETTINGS, "same"),
                                   "cases": {case: {"inputs": [f"{case}.nii.gz"], "prompts": ["left kidney"]}}})
    record_case_results(Path(folder), case, {"left kidney": {"presence": ANSWER, "side_check": {"status": "passed"}}})


def test_concurrent_processes_keep_every_cases_results(tmp_path):
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_record_one, args=(str(tmp_path), f"case_{i}")) for i in range(RUNS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    results = recorded_results(read_json_file(tmp_path / SETTINGS_FILE))
    assert sorted(results) == [f"case_{i}" for i in range(RUNS)]
    assert results["case_3"]["left kidney"] == {"presence": ANSWER, "side_check": {"status": "passed"}}


def test_a_case_predicted_again_with_other_prompts_keeps_only_its_current_prompts_results(tmp_path):
    _record_one(str(tmp_path), "ct")
    record_settings(tmp_path, {**dict.fromkeys(SHARED_SETTINGS, "same"),
                               "cases": {"ct": {"inputs": ["ct.nii.gz"], "prompts": ["liver"]}}})
    assert recorded_results(read_json_file(tmp_path / SETTINGS_FILE)) == {}  # left kidney is no longer asked of this case: its old answer is not reported


def test_runs_that_follow_each_other_share_one_report(trained_openvocab_model, tmp_path):
    inputs_a = slabs(tmp_path / "a", [("upper", 60)])
    inputs_b = slabs(tmp_path / "b", [("lower", 20)])
    output = tmp_path / "out"
    model = ["-m", str(trained_openvocab_model.model_folder), *FAST]
    trained_openvocab_model.folders.run("nnUNetv2_openvocab_predict", "-i", str(inputs_a), "-o", str(output), *model,
                                        "--prompts", "liver")
    trained_openvocab_model.folders.run("nnUNetv2_openvocab_predict", "-i", str(inputs_b), "-o", str(output), *model,
                                        "--prompts", "left kidney")
    report = report_of(output)
    assert {p["prompt"] for p in report["prompts"]} == {"liver", "left kidney"}
    assert set(report["presence"]) == {"upper", "lower"}
    assert set(report["presence"]["upper"]) == {"liver"} and set(report["presence"]["lower"]) == {"left kidney"}
    assert report["presence"]["upper"]["liver"]["status"] == "present"
    assert set(report["side_checks"]["lower"]) == {"left kidney"}
    markdown = (output / "prompt_report.md").read_text(encoding="utf-8")
    assert "| upper | liver |" in markdown and "| lower | left kidney |" in markdown


def test_kill_9_then_continue_prediction_reports_every_case(trained_openvocab_model, tmp_path):
    cases = [("first", 60), ("second", 40), ("third", 20)]
    inputs = slabs(tmp_path / "in", cases)
    output = tmp_path / "out"
    command = ["nnUNetv2_openvocab_predict", "-i", str(inputs), "-o", str(output), "-m",
               str(trained_openvocab_model.model_folder), *FAST, "--prompts", "liver", "aorta"]
    environment = trained_openvocab_model.folders.env
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not _finished_cases(output) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(30)
    finished = _finished_cases(output)
    if len(finished) == len(cases):
        pytest.skip("the run finished before it could be killed (machine much faster than expected)")
    assert finished, "the killed run recorded no finished case"
    kept = {case: (output / prompt_file_name(case, "liver")).stat().st_mtime_ns for case in finished}
    result = subprocess.run([*command, "--continue_prediction"], env=environment, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr
    assert f"skipped {len(finished)} finished case(s)" in result.stdout
    assert kept == {case: (output / prompt_file_name(case, "liver")).stat().st_mtime_ns for case in finished}
    report = report_of(output)
    assert sorted(report["presence"]) == sorted(name for name, _ in cases)
    assert all(set(prompts) == {"liver", "aorta"} for prompts in report["presence"].values())


def _finished_cases(output: Path) -> list:
    try:
        settings = json.loads((output / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [case for case, entry in settings["cases"].items() if entry.get("results")]
