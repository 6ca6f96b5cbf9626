"""Issue 11 §3, §4, §5 (evaluator) and §8 (our loaders): the real console entries on bad input print one line
naming the file and the fix, exit 1, and never show a traceback or torch's advice to unpickle."""
from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunetv2_openvocab.commands.curate_captions import main as curate_main
from nnunetv2_openvocab.commands.convert import main as convert_main
from dataset_conversion.label_tables import load_label_table
from nnunetv2_openvocab.commands.evaluate import main as evaluate_main
from nnunetv2_openvocab.commands.pretrain import main as pretrain_main
from nnunetv2_openvocab.pretraining.train import train
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name
from test_caption_curate_command import small_radlex, write_ct_rate_csv  # noqa: F401 (fixture)
from test_caption_llm_client import Reply, ScriptedChatServer
from test_conversion_support import write_layout_replica
from test_pretraining_resume import CONFIG
from test_pretraining_support import (synthetic_caption_records, write_feature_cache, write_manifest,
                                      write_tiny_nnunet_model)
from nnunetv2_openvocab.pretraining.manifest import read_manifest


def one_line_error(capsys_or_text, program: str) -> str:
    """The single error line a command printed; fails on tracebacks and torch's unpickling advice."""
    text = capsys_or_text if isinstance(capsys_or_text, str) else capsys_or_text.readouterr().err
    assert "Traceback" not in text and "weights_only=False" not in text, text
    lines = [line for line in text.splitlines() if line.startswith(f"{program}: error: ")]
    assert len(lines) == 1, text
    return lines[0]


def exits_with_one_line(entry, argv, capsys, program: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        entry(argv)
    assert exit_info.value.code not in (0, None)
    return one_line_error(str(exit_info.value.code) + "\n" + capsys.readouterr().err, program)


def poison(path: Path, marker: Path, content: dict) -> Path:
    """A torch checkpoint whose unpickling would create ``marker``."""
    class RunsShellCommand:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**content, "payload": RunsShellCommand()}, path)
    return path


# ---- §3 caption curation: exit codes -----------------------------------------------------------------------------
def closed_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def curate_argv(tmp_path: Path, base_url: str, radlex: Path) -> list:
    reports = write_ct_rate_csv(tmp_path / "reports.csv", [f"Liver has a {i} mm cyst." for i in range(5)])
    return ["--reports", str(reports), "--out", str(tmp_path / "out"), "--radlex", str(radlex), "--backend", "openai",
            "--base-url", base_url, "--model", "m", "--max-retries", "0", "--timeout", "5"]


def test_unreachable_llm_server_exits_non_zero_with_the_count(tmp_path, small_radlex, capsys):
    argv = curate_argv(tmp_path, f"http://127.0.0.1:{closed_loopback_port()}/v1", small_radlex)
    line = exits_with_one_line(curate_main, argv, capsys, "nnUNetv2_openvocab_curate_captions")
    assert "every request failed: 5 of 5 reports" in line and "cannot reach" in line
    assert (tmp_path / "out" / "manifest.jsonl").read_text(encoding="utf-8") == ""  # curated reports only


def test_rejected_api_key_exits_non_zero(tmp_path, small_radlex, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    with ScriptedChatServer(lambda report, attempt: Reply(status=401, body='{"error": "invalid key"}')) as server:
        line = exits_with_one_line(curate_main, curate_argv(tmp_path, server.url, small_radlex), capsys,
                                   "nnUNetv2_openvocab_curate_captions")
    assert "HTTP 401" in line and "API key" in line and "sk-wrong" not in line


# ---- §4 missing inputs, §3 conversion with failed cases ----------------------------------------------------------
@pytest.mark.parametrize("command, words", [
    (["nnUNetv2_openvocab_convert", "totalsegmentator", "-i", "nope", "-d", "291"], "Native folder nope does not exist"),
    (["nnUNetv2_openvocab_pretrain", "train", "--manifest", "nope.jsonl", "--out", "run"], "Manifest nope.jsonl"),
    (["nnUNetv2_openvocab_curate_captions", "--reports", "nope.csv", "--out", "out"], "nope.csv does not exist"),
    (["nnUNetv2_openvocab_check_dataset", "-d", "999"], "No dataset '999' in nnUNet_raw"),
])
def test_missing_input_is_one_line(tmp_path, command, words):
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, encoding="utf-8", timeout=300,
                            env={**os.environ, "nnUNet_raw": str(tmp_path)})
    assert result.returncode == 1 and words in one_line_error(result.stderr, command[0])


def test_conversion_with_a_failed_case_exits_non_zero(tmp_path, capsys, monkeypatch):
    native = tmp_path / "RawData"
    write_layout_replica(native, load_label_table("btcv"), {"train": ["0001", "0002"]})
    next(native.rglob("label0002*")).unlink()
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    line = exits_with_one_line(convert_main, ["btcv", "-i", str(native), "-d", "17", "-np", "1"], capsys,
                               "nnUNetv2_openvocab_convert")
    assert "1 of 2 cases failed" in line and "missing_file" in line and "conversion_report.json" in line
    assert len(list((tmp_path / "raw" / "Dataset017_BTCV" / "labelsTr").glob("*.nii.gz"))) == 1  # the other case


# ---- §4 poisoned checkpoints in our pretraining loaders ------------------------------------------------------------
def test_cache_features_refuses_a_poisoned_encoder_checkpoint(tmp_path, capsys):
    checkpoint = write_tiny_nnunet_model(tmp_path / "model")
    poison(checkpoint, tmp_path / "executed", torch.load(checkpoint, weights_only=True))
    manifest = write_manifest(tmp_path / "manifest.jsonl", synthetic_caption_records(2))
    line = exits_with_one_line(pretrain_main, ["cache-features", "--manifest", str(manifest), "--encoder-checkpoint",
                                               str(checkpoint), "--out", str(tmp_path / "cache")], capsys,
                               "nnUNetv2_openvocab_pretrain")
    assert str(checkpoint) in line and "refused" in line and not (tmp_path / "executed").exists()


def test_resume_and_export_refuse_a_poisoned_run_checkpoint(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "manifest.jsonl", synthetic_caption_records(13))
    features = torch.randn(13, 2, 16, generator=torch.Generator().manual_seed(3))
    cache = write_feature_cache(tmp_path / "cache", read_manifest(manifest), features)
    run = train(manifest, tmp_path / "run", CONFIG, cache=cache, stop_after_steps=1)
    poison(run / "checkpoint.pt", tmp_path / "executed", {"format": "x"})
    for argv in (["train", "--manifest", str(manifest), "--cache", str(cache), "--out", str(run), "--resume"],
                 ["export", "--run", str(run), "--out", str(tmp_path / "aligned")]):
        line = exits_with_one_line(pretrain_main, argv, capsys, "nnUNetv2_openvocab_pretrain")
        assert "checkpoint.pt was refused" in line and "arbitrary code" in line
    assert not (tmp_path / "executed").exists() and not (tmp_path / "aligned").exists()
    (run / "checkpoint.pt").write_bytes(b"truncated")
    line = exits_with_one_line(pretrain_main, ["export", "--run", str(run), "--out", str(tmp_path / "aligned")],
                               capsys, "nnUNetv2_openvocab_pretrain")
    assert "not a readable PyTorch checkpoint" in line


# ---- §4 output folder and §5 evaluator input sanity ----------------------------------------------------------------
@pytest.fixture
def evaluation_inputs(tmp_path) -> dict:
    labels = np.zeros((12, 14, 16), dtype=np.uint8)
    labels[3:8, 4:9, 5:10] = 1
    image = sitk.GetImageFromArray(labels)
    (tmp_path / "ref").mkdir()
    (tmp_path / "pred").mkdir()
    sitk.WriteImage(image, str(tmp_path / "ref" / "case.nii.gz"))
    sitk.WriteImage(image, str(tmp_path / "pred" / prompt_file_name("case", "liver")))
    (tmp_path / "dataset.json").write_text('{"labels": {"background": 0, "liver": 1}, "file_ending": ".nii.gz", '
                                           '"text_prompts": {"liver": ["liver"]}}')
    argv = ["-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred"), "-dj", str(tmp_path / "dataset.json"),
            "-np", "1"]
    return {"argv": argv, "labels": labels, "mask": tmp_path / "pred" / prompt_file_name("case", "liver")}


def test_evaluate_refuses_an_output_that_is_a_file(evaluation_inputs, tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    line = exits_with_one_line(evaluate_main, evaluation_inputs["argv"] + ["-o", str(tmp_path / "taken")], capsys,
                               "nnUNetv2_openvocab_evaluate")
    assert "taken is a file" in line
    line = exits_with_one_line(evaluate_main, evaluation_inputs["argv"] + ["-o", str(tmp_path / "taken" / "sub")],
                               capsys, "nnUNetv2_openvocab_evaluate")
    assert "taken is a file" in line


@pytest.mark.parametrize("bad_mask, words", [
    (lambda labels: sitk.GetImageFromArray(np.where(labels == 1, np.nan, 0).astype(np.float32)), "NaN or Inf"),
    (lambda labels: sitk.GetImageFromArray(labels[6]), "is a 2D image"),
])
def test_evaluate_refuses_nan_and_2d_masks(evaluation_inputs, tmp_path, capsys, bad_mask, words):
    sitk.WriteImage(bad_mask(evaluation_inputs["labels"]), str(evaluation_inputs["mask"]))
    line = exits_with_one_line(evaluate_main, evaluation_inputs["argv"] + ["-o", str(tmp_path / "eval")], capsys,
                               "nnUNetv2_openvocab_evaluate")
    assert str(evaluation_inputs["mask"]) in line and words in line
