"""Issue-2 pipeline through the real commands on the real CT: STUNet planner, stock nnUNetv2_train, stock nnUNetv2_predict.

Also proves trainer discovery: the stock commands find our trainers through nnUNet_extTrainer alone.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_openvocab.example_dataset import build_example_dataset

DATASET_ID = 991
PLANS = "nnUNetPlans_STUNetS_width8"
SMALL_SLABS = ((20, 60), (50, 90))  # two 40-slice cases keep CPU training and prediction short


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    from conftest import make_nnunet_folders

    folders = make_nnunet_folders(tmp_path_factory.mktemp("stunet_pipeline"))
    dataset = build_example_dataset(folders.raw, DATASET_ID, structures=("liver", "spleen", "kidney_left"),
                                    case_slabs=SMALL_SLABS)
    folders.run("nnUNetv2_openvocab_plan_and_preprocess", "-d", str(DATASET_ID), "--stunet", "S", "--width", "8",
                "--text-encoder", "minilm", "--patch-size", "32", "64", "64", "-np", "2", "--no_pbar")
    return folders, dataset


def test_plans_name_network_and_openvocab_section(planned):
    folders, dataset = planned
    plans = json.loads((folders.root / "preprocessed" / dataset.name / f"{PLANS}.json").read_text(encoding="utf-8"))
    architecture = plans["configurations"]["3d_fullres"]["architecture"]
    assert architecture["network_class_name"] == "nnunetv2_openvocab.network.stunet.STUNet"
    assert architecture["arch_kwargs"]["dims"] == [8, 16, 32, 64, 128, 128]
    assert len(architecture["arch_kwargs"]["strides"]) == 6
    section = plans["openvocab"]
    assert section["text_encoder"] == "minilm" and section["embedding_dim"] == 384
    assert section["label_names"] == ["liver", "spleen", "kidney_left"]


def test_planning_refuses_an_invalid_dataset(nnunet_folders):
    dataset = build_example_dataset(nnunet_folders.raw, 992, structures=("liver",), case_slabs=((0, 20),))
    data = json.loads((dataset / "dataset.json").read_text(encoding="utf-8"))
    data["text_prompts"]["liver"] = [""]
    (dataset / "dataset.json").write_text(json.dumps(data))
    import subprocess
    result = subprocess.run(["nnUNetv2_openvocab_plan_and_preprocess", "-d", "992", "--text-encoder", "minilm"],
                            env=nnunet_folders.env, capture_output=True, encoding="utf-8", errors="replace")
    assert result.returncode != 0
    assert "text_prompts.liver[0]" in result.stderr + result.stdout


@pytest.mark.parametrize("trainer", ["nnUNetTrainer_CPUSmoke", "nnUNetTrainerOpenVocab_CPUSmoke"])
def test_stock_train_and_predict_keep_geometry(planned, trainer, tmp_path):
    folders, dataset = planned
    folders.run("nnUNetv2_train", str(DATASET_ID), "3d_fullres", "all", "-tr", trainer, "-p", PLANS, "-device", "cpu")
    output = tmp_path / "predictions"
    folders.run("nnUNetv2_predict", "-i", str(dataset / "imagesTr"), "-o", str(output), "-d", str(DATASET_ID),
                "-c", "3d_fullres", "-f", "all", "-tr", trainer, "-p", PLANS, "-device", "cpu", "--disable_tta",
                "-npp", "1", "-nps", "1")
    for image_file in sorted((dataset / "imagesTr").glob("*_0000.nii.gz")):
        case = image_file.name[: -len("_0000.nii.gz")]
        image, prediction = sitk.ReadImage(str(image_file)), sitk.ReadImage(str(output / f"{case}.nii.gz"))
        assert prediction.GetSize() == image.GetSize()
        np.testing.assert_allclose(prediction.GetSpacing(), image.GetSpacing())
        np.testing.assert_allclose(prediction.GetOrigin(), image.GetOrigin())
        np.testing.assert_allclose(prediction.GetDirection(), image.GetDirection())
        assert set(np.unique(sitk.GetArrayFromImage(prediction))) <= {0, 1, 2, 3}
