"""Baselines: ``evaluate`` scores label maps (stock nnU-Net's output) with dataset.json's labels, ``evaluate --cv``
scores nnU-Net's fold_k/validation folders as one evaluation, and ``compare`` then compares a stock nnU-Net and an
OpenVocab model on the same cases, from real stock ``nnUNetv2_train`` runs on the bundled CT (fold 0 only: two
trainings keep the suite short; the gathering of several folds is checked on copied label maps)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_openvocab.commands import compare as compare_entry, evaluate as evaluate_entry
from nnunetv2_openvocab.evaluation.evaluate_folder import evaluate_folder
from nnunetv2_openvocab.example_dataset import build_example_dataset
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name

DATASET_ID, PLANS = 993, "nnUNetPlans_STUNetS_width8"
STRUCTURES = ("liver", "spleen")
SLABS = ((72, None), (80, None))  # two slabs of the upper abdomen with liver and spleen: one case per fold


def test_a_label_map_scores_as_its_per_prompt_masks(tmp_path):
    dataset = build_example_dataset(tmp_path / "raw", DATASET_ID, structures=STRUCTURES, case_slabs=SLABS)
    dataset_json = json.loads((dataset / "dataset.json").read_text(encoding="utf-8"))
    label_maps, masks = tmp_path / "label_maps", tmp_path / "masks"
    label_maps.mkdir()
    masks.mkdir()
    for reference in sorted((dataset / "labelsTr").glob("*.nii.gz")):
        image = sitk.ReadImage(str(reference))
        shifted = np.roll(sitk.GetArrayFromImage(image), 2, axis=1)  # a prediction 2 voxels off
        prediction = sitk.GetImageFromArray(shifted)
        prediction.CopyInformation(image)
        sitk.WriteImage(prediction, str(label_maps / reference.name))
        case = reference.name[: -len(".nii.gz")]
        for name in STRUCTURES:
            mask = sitk.GetImageFromArray((shifted == dataset_json["labels"][name]).astype(np.uint8))
            mask.CopyInformation(image)
            sitk.WriteImage(mask, str(masks / prompt_file_name(case, dataset_json["text_prompts"][name][0])))
    from_maps = evaluate_folder(dataset / "labelsTr", label_maps, dataset_json, num_processes=1)
    from_masks = evaluate_folder(dataset / "labelsTr", masks, dataset_json, num_processes=1)
    dice = [r["dice"] for r in from_maps["per_case"]]
    assert dice == [r["dice"] for r in from_masks["per_case"]] and all(0.3 < d < 1 for d in dice), dice


def test_cross_validation_needs_its_folds(tmp_path):
    (tmp_path / "results" / "fold_0" / "validation").mkdir(parents=True)
    (tmp_path / "results" / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "liver": 1},
                                                                   "file_ending": ".nii.gz"}))
    with pytest.raises(SystemExit) as exit_info:
        evaluate_entry.main(["--cv", str(tmp_path / "results"), "-ref", str(tmp_path), "-o", str(tmp_path / "o")])
    message = str(exit_info.value.code)  # one line, exit status non-zero
    assert message.startswith("nnUNetv2_openvocab_evaluate: error:") and "folds [1, 2, 3, 4]" in message


def test_cross_validation_gathers_each_fold_s_validation_once(tmp_path):
    dataset = build_example_dataset(tmp_path / "raw", DATASET_ID, structures=STRUCTURES, case_slabs=SLABS)
    results = tmp_path / "results"
    for fold, reference in enumerate(sorted((dataset / "labelsTr").glob("*.nii.gz"))):
        (results / f"fold_{fold}" / "validation").mkdir(parents=True)
        (results / f"fold_{fold}" / "validation" / reference.name).write_bytes(reference.read_bytes())
    (results / "dataset.json").write_bytes((dataset / "dataset.json").read_bytes())
    evaluate_entry.main(["--cv", str(results), "--cv-folds", "0", "1", "-ref", str(dataset / "labelsTr"),
                         "-o", str(tmp_path / "eval"), "-np", "1"])
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text(encoding="utf-8"))
    assert len({row["case"] for row in summary["per_case"]}) == 2 and summary["foreground_mean"]["dice"] == 1.0
    (results / "fold_1" / "validation" / "example_000.nii.gz").write_bytes(
        (dataset / "labelsTr" / "example_000.nii.gz").read_bytes())  # fold 1 now also validates fold 0's case
    with pytest.raises(SystemExit, match="validated by two folds"):
        evaluate_entry.main(["--cv", str(results), "--cv-folds", "0", "1", "-ref", str(dataset / "labelsTr"),
                             "-o", str(tmp_path / "eval2"), "-np", "1"])


@pytest.fixture(scope="module")
def fold_0_runs(tmp_path_factory):
    """Stock nnUNetTrainer and nnUNetTrainerOpenVocab (CPU smoke twins: 2 iterations) trained on fold 0 of the same
    two-fold split by the real nnUNetv2_train, each validating the held-out case into fold_0/validation."""
    from conftest import make_nnunet_folders

    folders = make_nnunet_folders(tmp_path_factory.mktemp("baseline"))
    dataset = build_example_dataset(folders.raw, DATASET_ID, structures=STRUCTURES, case_slabs=SLABS)
    folders.run("nnUNetv2_openvocab_plan_and_preprocess", "-d", str(DATASET_ID), "--stunet", "S", "--width", "8",
                "--text-encoder", "minilm", "--patch-size", "32", "64", "64", "-np", "2", "--no_pbar")
    cases = sorted(p.name[: -len(".nii.gz")] for p in (dataset / "labelsTr").glob("*.nii.gz"))
    splits = [{"train": [cases[1]], "val": [cases[0]]}, {"train": [cases[0]], "val": [cases[1]]}]
    (folders.root / "preprocessed" / dataset.name / "splits_final.json").write_text(json.dumps(splits))
    results = {}
    for trainer in ("nnUNetTrainer_CPUSmoke", "nnUNetTrainerOpenVocab_CPUSmoke"):
        folders.run("nnUNetv2_train", str(DATASET_ID), "3d_fullres", "0", "-tr", trainer, "-p", PLANS, "-device", "cpu")
        results[trainer] = folders.results / dataset.name / f"{trainer}__{PLANS}__3d_fullres"
    return dataset, cases[:1], results


def test_stock_nnunet_and_openvocab_are_compared_on_the_same_cases(fold_0_runs, tmp_path, capsys):
    dataset, cases, results = fold_0_runs
    evaluations = {}
    for trainer, results_folder in results.items():
        evaluations[trainer] = tmp_path / trainer
        evaluate_entry.main(["--cv", str(results_folder), "--cv-folds", "0", "-ref", str(dataset / "labelsTr"),
                             "-o", str(evaluations[trainer]), "-np", "1"])
        summary = json.loads((evaluations[trainer] / "summary.json").read_text(encoding="utf-8"))
        assert sorted({row["case"] for row in summary["per_case"]}) == cases
        assert all(row["status"] == "evaluated" for row in summary["per_case"])
        assert [p["prompt"] for p in summary["prompts"]] == ["liver", "spleen"]
    compare_entry.main([str(evaluations["nnUNetTrainer_CPUSmoke"]),
                        str(evaluations["nnUNetTrainerOpenVocab_CPUSmoke"]), "-o", str(tmp_path / "compare")])
    comparison = json.loads((tmp_path / "compare" / "comparison.json").read_text(encoding="utf-8"))
    assert comparison["settings"]["cases"] == 1
    assert {row["name"] for row in comparison["rows"] if row["level"] == "prompt"} == set(STRUCTURES)
    assert "all prompts" in capsys.readouterr().out
