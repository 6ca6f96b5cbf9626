"""The dataset validator: each broken dataset.json gives its specific message; random junk never crashes it."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from nnunetv2_openvocab.commands.check_dataset import main as check_dataset_main
from nnunetv2_openvocab.prompts.validation import validate_dataset

VALID = {
    "channel_names": {"0": "CT"},
    "labels": {"background": 0, "liver": 1, "spleen": 2},
    "numTraining": 2,
    "file_ending": ".nii.gz",
    "text_prompts": {"liver": ["liver", "hepatic parenchyma"], "spleen": ["spleen"]},
    "annotated_labels": {"case_b": ["liver"]},
}


def make_dataset(folder: Path, dataset_json: object) -> Path:
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for case in ("case_a", "case_b"):
        (folder / "imagesTr" / f"{case}_0000.nii.gz").write_bytes(b"")
        (folder / "labelsTr" / f"{case}.nii.gz").write_bytes(b"")
    (folder / "dataset.json").write_text(json.dumps(dataset_json))
    return folder


def problems_for(tmp_path: Path, **changes) -> list:
    dataset = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            dataset.pop(key)
        else:
            dataset[key] = value
    return validate_dataset(make_dataset(tmp_path, dataset))


def test_valid_dataset_has_no_problems(tmp_path):
    assert validate_dataset(make_dataset(tmp_path, VALID)) == []


@pytest.mark.parametrize("changes, field, words", [
    ({"text_prompts": {"liver": ["liver"]}}, "text_prompts.spleen", "has no prompts"),
    ({"text_prompts": {"liver": ["liver"], "spleen": []}}, "text_prompts.spleen", "non-empty list"),
    ({"text_prompts": {"liver": ["liver", ""], "spleen": ["spleen"]}}, "text_prompts.liver[1]", "empty or not a string"),
    ({"text_prompts": {"liver": ["liver", 3], "spleen": ["spleen"]}}, "text_prompts.liver[1]", "empty or not a string"),
    ({"text_prompts": {"liver": ["liver"], "spleen": ["spleen", "Liver"]}}, "text_prompts.spleen[1]", "also used by label 'liver'"),
    ({"text_prompts": {"liver": ["liver"], "spleen": ["spleen", "liver!"]}}, "text_prompts.spleen[1]", "also used by label 'liver'"),
    ({"text_prompts": {"liver": ["liver"], "spleen": ["spleen", "livér"]}}, "text_prompts.spleen[1]", "both be saved as <case>_liver"),
    ({"text_prompts": {"liver": ["liver", "?!"], "spleen": ["spleen"]}}, "text_prompts.liver[1]", "no letters or digits"),
    ({"text_prompts": {"liver": ["liver"], "spleen": ["spleen"], "kidney": ["kidney"]}}, "text_prompts.kidney", "not a foreground label"),
    ({"text_prompts": None}, "text_prompts", "found nothing"),
    ({"annotated_labels": {"case_zzz": ["liver"]}}, "annotated_labels.case_zzz", "not in labelsTr"),
    ({"annotated_labels": {"case_a": ["pancreas"]}}, "annotated_labels.case_a", "'pancreas' is not a foreground label"),
    ({"annotated_labels": {"case_a": []}}, "annotated_labels.case_a", "non-empty list"),
    ({"annotated_labels": ["case_a"]}, "annotated_labels", "must be an object"),
    ({"labels": {"liver": 1, "spleen": 2}}, "labels.background", "requires \"background\": 0"),
    ({"labels": {"background": 0, "liver": 1, "spleen": 1}}, "labels", "used by more than one label"),
    ({"labels": {"background": 0, "liver": "one", "spleen": 2}}, "labels.liver", "not a non-negative integer"),
    ({"numTraining": 5}, "numTraining", "says 5 but labelsTr has 2"),
    ({"file_ending": None}, "file_ending", "required nnU-Net key is missing"),
    ({"channel_names": None}, "channel_names", "required nnU-Net key is missing"),
])
def test_each_problem_has_its_message(tmp_path, changes, field, words):
    problems = problems_for(tmp_path, **changes)
    matching = [p for p in problems if p.field == field and words in p.problem]
    assert matching, f"expected {field!r} with {words!r}, got {[str(p) for p in problems]}"
    assert all(p.fix and p.file.endswith("dataset.json") for p in problems)


def test_all_problems_are_reported_at_once(tmp_path):
    problems = problems_for(tmp_path, text_prompts={"liver": [""], "kidney": ["x"]}, numTraining=9,
                            annotated_labels={"nope": ["liver"]})
    fields = {p.field for p in problems}
    assert {"text_prompts.liver[0]", "text_prompts.kidney", "text_prompts.spleen", "numTraining",
            "annotated_labels.nope"} <= fields


def test_missing_image_channel(tmp_path):
    folder = make_dataset(tmp_path, VALID)
    (folder / "imagesTr" / "case_a_0000.nii.gz").unlink()
    assert any("lacks image channel" in p.problem for p in validate_dataset(folder))


def test_invalid_json_file(tmp_path):
    folder = make_dataset(tmp_path, VALID)
    (folder / "dataset.json").write_text("{not json")
    [problem] = validate_dataset(folder)
    assert "not valid JSON" in problem.problem


def test_command_exit_codes(tmp_path, capsys):
    good = make_dataset(tmp_path / "good", VALID)
    assert check_dataset_main(["-d", str(good)]) == 0
    bad = make_dataset(tmp_path / "bad", {**VALID, "text_prompts": {"liver": ["liver"]}})
    assert check_dataset_main(["-d", str(bad)]) == 1
    assert "text_prompts.spleen" in capsys.readouterr().out
