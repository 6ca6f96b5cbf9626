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


def test_frozen_encoder_without_pretrained_weights_refuses_to_train(planned):
    """No openvocab.pretrained_checkpoint and no -pretrained_weights: one clear line, non-zero exit."""
    import subprocess

    folders, _ = planned
    result = subprocess.run(["nnUNetv2_train", str(DATASET_ID), "3d_fullres", "all", "-tr",
                             "nnUNetTrainerOpenVocabFrozenEncoder", "-p", PLANS, "-device", "cpu"],
                            env=folders.env, capture_output=True, encoding="utf-8", errors="replace", timeout=600)
    assert result.returncode != 0
    assert "no pretrained weights were given" in result.stderr and "--pretrained PATH" in result.stderr
    assert "Traceback" not in result.stderr


def test_cross_attention_model_predicts_through_m_with_its_connector(planned, tmp_path):
    """The predictor builds the connector from the checkpoint's spec: a cross-attention model trained by a trainer
    nnU-Net cannot even find at prediction time (a test-only smoke twin) loads with -m."""
    from conftest import NnUNetFolders
    from nnunetv2_openvocab.inference.model_loading import load_trained_model
    from nnunetv2_openvocab.network.text_query_head import CrossAttentionConnector
    from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name
    from nnunetv2_openvocab.trainer_discovery import ext_trainer_value

    folders, dataset = planned
    trainer = "nnUNetTrainerOpenVocabCrossAttention_CPUSmoke"
    folders.run("nnUNetv2_train", str(DATASET_ID), "3d_fullres", "all", "-tr", trainer, "-p", PLANS, "-device", "cpu")
    model_folder = folders.results / dataset.name / f"{trainer}__{PLANS}__3d_fullres"
    model = load_trained_model(model_folder)
    assert isinstance(model.network.head.connector, CrossAttentionConnector)
    assert model.spec.connector == "cross_attention" and model.spec.label_names == ("liver", "spleen", "kidney_left")

    image = dataset / "imagesTr" / "example_000_0000.nii.gz"
    without_smoke_trainers = NnUNetFolders(folders.root, {**folders.env, "nnUNet_extTrainer": ext_trainer_value()})
    without_smoke_trainers.run("nnUNetv2_openvocab_predict", "-i", str(image), "-o", str(tmp_path / "out"), "-m",
                               str(model_folder), "-f", "all", "--disable_tta", "-device", "cpu", "-step_size", "1",
                               "--disable_progress_bar", "--prompts", "liver", "renal organs")
    for prompt in ("liver", "renal organs"):
        mask = sitk.ReadImage(str(tmp_path / "out" / prompt_file_name("example_000", prompt)))
        assert mask.GetSize() == sitk.ReadImage(str(image)).GetSize()
