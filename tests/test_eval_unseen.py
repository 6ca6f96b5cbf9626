"""``nnUNetv2_openvocab_eval_unseen``: set loading and filtering, then the real command on the real CT with the
model trained in the test session."""
from __future__ import annotations

import json

import pytest
import SimpleITK as sitk

from nnunetv2_openvocab.evaluation.unseen_prompts import applicable_entries, load_unseen_prompt_set
from nnunetv2_openvocab.example_dataset import DEFAULT_STRUCTURES, EXAMPLE_CT, example_prompts

LABELS = list(DEFAULT_STRUCTURES)


def test_shipped_example_set_targets_the_example_labels_with_unseen_prompts():
    content, source = load_unseen_prompt_set("example")
    training = {p.lower() for name in LABELS for p in example_prompts()[name]}
    assert source.endswith("unseen_prompts/example.json") and len(content["prompts"]) >= 2
    for entry in content["prompts"]:
        assert set(entry["targets"]) <= set(LABELS) and entry["prompt"].lower() not in training
    kept, left_out = applicable_entries(content, LABELS)
    assert kept["prompts"] == content["prompts"] and left_out == []


def test_totalsegmentator_set_is_restricted_to_the_dataset_labels():
    content, _ = load_unseen_prompt_set("totalsegmentator_synonyms")
    kept, left_out = applicable_entries(content, LABELS)
    assert {"renal organs", "hepatic system"} <= {e["prompt"] for e in kept["prompts"]}
    assert left_out and all(set(e["targets"]) <= set(LABELS) for e in kept["prompts"])
    with pytest.raises(ValueError, match="No entry"):
        applicable_entries(content, ["urinary_bladder_of_a_fish"])


def test_unknown_set_and_bad_json_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a file nor a shipped set"):
        load_unseen_prompt_set("no_such_set")
    (tmp_path / "set.json").write_text("{prompts: [}")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_unseen_prompt_set(tmp_path / "set.json")


def test_command_predicts_and_scores_the_unseen_prompts(trained_openvocab_model, tmp_path):
    images, reference = tmp_path / "images", tmp_path / "reference"
    images.mkdir()
    reference.mkdir()
    labels = sitk.ReadImage(str(trained_openvocab_model.dataset_folder / "labelsTr" / "example_000.nii.gz"))
    sitk.WriteImage(sitk.ReadImage(str(EXAMPLE_CT))[:, :, 50:98], str(images / "abdomen_0000.nii.gz"))
    sitk.WriteImage(labels[:, :, 50:98], str(reference / "abdomen.nii.gz"))
    result = trained_openvocab_model.folders.run(
        "nnUNetv2_openvocab_eval_unseen", "-m", str(trained_openvocab_model.model_folder), "-f", "all",
        "-i", str(images), "-ref", str(reference), "--set", "example", "-o", str(tmp_path / "out"),
        "--disable_tta", "-device", "cpu", "-step_size", "1", "-np", "1", "--disable_progress_bar")
    out = tmp_path / "out"
    prompts = [e["prompt"] for e in load_unseen_prompt_set("example")[0]["prompts"]]
    for column in ("text", "grounded_held_out"):
        summary = json.loads((out / "metrics" / column / "summary.json").read_text(encoding="utf-8"))
        assert [p["prompt"] for p in summary["prompts"]] == prompts
        assert all(summary["mean"][p]["n_evaluated"] == 1 for p in prompts)
        settings = json.loads((out / "predictions" / column / "prediction_settings.json").read_text(encoding="utf-8"))
        assert settings["grounding"] == {"text": "text", "grounded_held_out": "auto"}[column]
        assert settings["grounding_held_out"] == ([] if column == "text" else prompts)
    table = json.loads((out / "unseen_summary.json").read_text(encoding="utf-8"))
    assert table["columns"] == {"text": "text route (paper's column)",
                                "grounded_held_out": "grounded, set held out (ours)"}
    rows = {row["prompt"]: row for row in table["rows"]}
    assert list(rows) == prompts and rows["renal organs"]["text_dice"] is not None
    # the grounded column unites the two kidney labels: the text route has no such answer
    assert rows["left and right kidney"]["route"].startswith("union")
    assert rows["left and right kidney"]["grounded_held_out_dice"] > 0.3
    report = (out / "predictions" / "grounded_held_out" / "prompt_report.md").read_text(encoding="utf-8")
    assert "(exact match)" not in report  # no prompt of the set found itself in the taxonomy
    assert "text route (paper's column)" in result.stdout and "| hepatic system | liver | synonym |" in result.stdout
    assert (out / "unseen_dsc.png").stat().st_size > 1000 and "prompt report" in result.stdout
    assert json.loads((out / "unseen_set.json").read_text(encoding="utf-8"))["left_out"] == []
