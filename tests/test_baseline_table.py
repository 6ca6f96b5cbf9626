"""Table V: the generated commands (every dataset and fold, stock nnU-Net and ours on the same cases) and the table
built from a real ``compare`` of two evaluations of label maps on the bundled CT. The real smoke-scale training
comparison is tests/test_baseline_evaluation.py's."""
from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk

from nnunetv2_openvocab.commands import compare as compare_entry
from nnunetv2_openvocab.evaluation.baseline_table import build_table_v, table_v_commands, write_table_v
from nnunetv2_openvocab.evaluation.evaluate_folder import evaluate_folder
from nnunetv2_openvocab.example_dataset import build_example_dataset


def test_every_dataset_and_fold_trains_both_models_and_both_are_scored_on_the_same_cases(tmp_path):
    for scale, datasets, folds in (("paper", {"503", "504"}, ["0", "1", "2", "3", "4"]),
                                   ("smoke", {"994"}, ["0", "1"])):
        commands = table_v_commands(scale, tmp_path)
        trainings = [c for c in commands if c[0] == "nnUNetv2_train"]
        trainers = {c[c.index("-tr") + 1] for c in trainings}
        assert len(trainers) == 2 and any(t.startswith("nnUNetTrainer_") or t == "nnUNetTrainer" for t in trainers)
        for dataset in datasets:
            for trainer in trainers:
                assert sorted(c[3] for c in trainings if c[1] == dataset and c[c.index("-tr") + 1] == trainer) \
                    == folds, (scale, dataset, trainer)
        evaluations = [c for c in commands if c[0] == "nnUNetv2_openvocab_evaluate"]
        compares = [c for c in commands if c[0] == "nnUNetv2_openvocab_compare"]
        assert len(evaluations) == 2 * len(datasets) and len(compares) == len(datasets)
        for stock, ours, compare in zip(evaluations[::2], evaluations[1::2], compares):
            cv_stock, cv_ours = stock[stock.index("--cv") + 1], ours[ours.index("--cv") + 1]
            assert cv_stock.split("/")[-2] == cv_ours.split("/")[-2] and cv_stock != cv_ours  # one dataset, two models
            for flag in ("-ref", "--cv-folds"):
                assert stock[stock.index(flag) + 1] == ours[ours.index(flag) + 1]
            assert stock[stock.index("--cv-folds") + 1: stock.index("-ref")] == folds
            assert compare[1:3] == [stock[stock.index("-o") + 1], ours[ours.index("-o") + 1]]
        for command in commands:  # each step after the ones it needs
            if command[0] == "nnUNetv2_train":
                assert any(c[0].endswith("plan_and_preprocess") and c[2] == command[1]
                           for c in commands[: commands.index(command)])
        assert commands.index(compares[-1]) == len(commands) - 1


def test_table_v_puts_this_run_s_comparison_beside_the_published_values(tmp_path):
    dataset = build_example_dataset(tmp_path / "raw", 994, structures=("liver", "spleen"),
                                    case_slabs=((64, None), (72, None), (80, None)))
    dataset_json = json.loads((dataset / "dataset.json").read_text(encoding="utf-8"))
    evaluations = {}
    for method, shift in (("stock", 3), ("ours", 1)):  # "ours" is a label map nearer the reference
        predictions = tmp_path / method
        predictions.mkdir()
        for reference in sorted((dataset / "labelsTr").glob("*.nii.gz")):
            image = sitk.ReadImage(str(reference))
            shifted = sitk.GetImageFromArray(np.roll(sitk.GetArrayFromImage(image), shift, axis=1))
            shifted.CopyInformation(image)
            sitk.WriteImage(shifted, str(predictions / reference.name))
        evaluations[method] = evaluate_folder(dataset / "labelsTr", predictions, dataset_json,
                                              tmp_path / f"eval_{method}", num_processes=1)
    compare_entry.main([str(tmp_path / "eval_stock"), str(tmp_path / "eval_ours"), "-o", str(tmp_path / "cmp")])
    built = build_table_v({"bundled CT (smoke)": tmp_path / "cmp"})
    assert built["header"] == ["Method", "SegRap2023 DSC", "SegRap2023 NSD", "COVID-19 DSC", "COVID-19 NSD",
                               "bundled CT (smoke) DSC", "bundled CT (smoke) NSD"]
    rows = {row[0]: row[1:] for row in built["rows"]}
    assert rows["OpenVocabCT (paper)"][:4] == ["87.12", "86.01", "73.99", "58.44"]
    assert rows["nnUNet vs OpenVocabCT paired t-test p (paper)"][:2] == ["0.46", "0.0008"]
    stock_dice = np.mean([row["dice"] for row in evaluations["stock"]["per_case"]])  # prompts, then cases
    ours_dice = np.mean([row["dice"] for row in evaluations["ours"]["per_case"]])
    assert rows["nnUNet (this run)"][4] == f"{100 * stock_dice:.2f}"
    assert rows["OpenVocabCT (this run)"][4] == f"{100 * ours_dice:.2f}" and ours_dice > stock_dice
    assert rows["nnUNet (this run)"][:4] == ["-"] * 4 and rows["cases (this run)"][4] == "3"
    assert float(rows["nnUNet vs OpenVocabCT paired t-test p (this run)"][4]) < 1
    paths = write_table_v({"bundled CT (smoke)": tmp_path / "cmp"}, tmp_path)
    assert (tmp_path / "table_V.md").read_text(encoding="utf-8").startswith("Table V.")
    assert open(paths["csv"], encoding="utf-8").readline().strip() == ",".join(built["header"])
