"""``nnUNetv2_openvocab_demo``: its plumbing on the model trained in the test session (training itself is the
real ``nnUNetv2_train``, exercised by the conftest fixture), and the time limit on a long-running command."""
from __future__ import annotations

import sys
import time

import pytest

from nnunetv2_openvocab.demo import DemoError, ProgressEcho, demo_prompt_set, reference_comparison, run_demo, run_logged
from nnunetv2_openvocab.example_dataset import DEFAULT_STRUCTURES, example_prompts
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name


def example_dataset_json() -> dict:
    """The labels and text prompts of the example dataset's dataset.json."""
    return {"labels": {"background": 0, **{name: i for i, name in enumerate(DEFAULT_STRUCTURES, start=1)}},
            "text_prompts": {name: example_prompts()[name] for name in DEFAULT_STRUCTURES}}


def test_demo_prompts_are_the_training_prompts_plus_unseen_ones():
    prompts = example_prompts()
    prompt_set = demo_prompt_set(example_dataset_json())
    seen = [p for p in prompt_set["prompts"] if p["kind"] == "seen"]
    unseen = [p for p in prompt_set["prompts"] if p["kind"] != "seen"]
    assert [p["prompt"] for p in seen] == [prompts[name][0] for name in DEFAULT_STRUCTURES]
    training = {t.lower() for name in DEFAULT_STRUCTURES for t in prompts[name]}
    assert len(unseen) >= 2 and not {p["prompt"].lower() for p in unseen} & training


def test_demo_writes_masks_report_metrics_and_previews(trained_openvocab_model, tmp_path, capsys):
    outputs = run_demo(tmp_path / "demo", model_folder=trained_openvocab_model.model_folder, step_size=1.0)
    printed = capsys.readouterr().out
    predictions = tmp_path / "demo" / "predictions"
    prompts = [p["prompt"] for p in demo_prompt_set(example_dataset_json())["prompts"]]
    assert all((predictions / prompt_file_name("example_000", p)).is_file() for p in prompts)
    assert (predictions / "previews" / "example_000.png").is_file()
    table = outputs["metrics table"].read_text(encoding="utf-8")
    assert "| liver | liver | seen |" in table and "| renal organs | kidney_left + kidney_right | synonym |" in table
    assert outputs["prompt report"].is_file() and "Where everything is:" in printed and "DSC" in printed
    assert "| renal organs | kidney_left + kidney_right | synonym |" in printed
    both = outputs["unseen prompts, both routes"].read_text(encoding="utf-8")
    assert "text route (paper's column)" in both and "grounded, set held out (ours)" in both
    assert both.count("| renal organs |") == 1 and "\n| liver |" not in both  # unseen prompts only
    assert (tmp_path / "demo" / "predictions_text" / prompt_file_name("example_000", "renal organs")).is_file()


def test_a_command_is_stopped_at_its_deadline(tmp_path):
    start = time.monotonic()
    finished = run_logged([sys.executable, "-c", "import time; time.sleep(60)"], {}, tmp_path / "sleep.log",
                          deadline_s=1)
    assert not finished and time.monotonic() - start < 20


def test_a_failing_command_reports_its_log(tmp_path):
    with pytest.raises(DemoError, match="exit 3"):
        run_logged([sys.executable, "-c", "print('boom'); raise SystemExit(3)"], {}, tmp_path / "fail.log")


def test_training_progress_shows_an_eta_from_the_mean_epoch_time(tmp_path, capsys):
    log = tmp_path / "train.log"
    log.write_text("2026-12-01 10:00:00: Epoch 0\n2026-12-01 10:00:40: Epoch time: 40.0 s\n", encoding="utf-8")
    progress = ProgressEcho(total_epochs=15)
    seen = progress.echo_new_lines(log, 0)
    log.write_text(log.read_text(encoding="utf-8") + "2026-12-01 10:01:40: Epoch time: 80.0 s\n", encoding="utf-8")
    progress.echo_new_lines(log, seen)
    printed = capsys.readouterr().out
    assert "epoch 1/15 done (40 s); ETA 10 min" in printed  # 14 epochs x 40 s
    assert "epoch 2/15 done (80 s); ETA 13 min" in printed  # 13 epochs x 60 s (mean so far)


def test_the_final_table_puts_the_reference_run_beside_this_one():
    summary = {"prompts": [{"prompt": "liver"}, {"prompt": "something new"}],
               "mean": {"liver": {"dice": 0.5, "nsd": 0.25}, "something new": {"dice": 0.1, "nsd": 0.2}}}
    table = reference_comparison(summary)
    assert "| prompt | DSC (%) this run | DSC (%) reference |" in table
    liver_row = next(line for line in table.splitlines() if line.startswith("| liver |"))
    assert liver_row.startswith("| liver | 50.00 | ") and "| 25.00 |" in liver_row
    assert "| something new | 10.00 | n/a | 20.00 | n/a |" in table
