"""Shared fixtures: nnU-Net folders in a temp dir, the real example CT as a dataset, and one trained model.

The trained model (``trained_openvocab_model``) is built once per test session through the real commands
(plan_and_preprocess, stock nnUNetv2_train) on the bundled real CT, and reused by the trainer, predictor
and evaluation tests.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import pytest

from nnunetv2_openvocab.example_dataset import DEFAULT_STRUCTURES, build_example_dataset
from nnunetv2_openvocab.trainer_discovery import ext_trainer_value

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("OPENVOCAB_SHARED_DATA", REPO.parent / "shared" / "data"))
LEARNING_DATASET_ID = 990
LEARNING_PLANS = "nnUNetPlans_STUNetB_width8"
LEARNING_TRAINER = "nnUNetTrainerOpenVocab_CPUShort"
PATCH_SIZE = ("48", "48", "48")
SMOKE_TRAINERS = Path(__file__).resolve().parent / "smoke_trainers"  # test-only *_CPUSmoke trainers


def shared_data(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available (set OPENVOCAB_SHARED_DATA)")
    return path


def read_shared_label_map(*parts: str):
    """(SimpleITKIO, label map as (z, y, x) array, properties) of a label map under ../shared/data; skips if absent."""
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    io = SimpleITKIO()
    segmentation, properties = io.read_seg(str(shared_data(*parts)))
    return io, segmentation[0], properties


@dataclass
class NnUNetFolders:
    root: Path
    env: Dict[str, str]

    @property
    def raw(self) -> Path:
        return Path(self.env["nnUNet_raw"])

    @property
    def results(self) -> Path:
        return Path(self.env["nnUNet_results"])

    def run(self, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
        """Run a console command with these folders; fail the test with its output on a non-zero exit."""
        result = subprocess.run(list(args), env=self.env, capture_output=True, encoding="utf-8", errors="replace", timeout=timeout)
        if result.returncode != 0:
            pytest.fail(f"{' '.join(args)} exited {result.returncode}\nSTDOUT:\n{result.stdout[-4000:]}\n"
                        f"STDERR:\n{result.stderr[-4000:]}")
        return result


def make_nnunet_folders(root: Path) -> NnUNetFolders:
    env = dict(os.environ)
    env.update({
        "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "preprocessed"),
        "nnUNet_results": str(root / "results"), "nnUNet_openvocab_cache": str(root / "text_cache"),
        "nnUNet_def_n_proc": "2", "nnUNet_n_proc_DA": "2", "nnUNet_compile": "false",
        "nnUNet_extTrainer": ext_trainer_value(os.pathsep.join(filter(None, [str(SMOKE_TRAINERS),
                                                                             os.environ.get("nnUNet_extTrainer")]))),
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
    })
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    return NnUNetFolders(root, env)


@pytest.fixture
def nnunet_folders(tmp_path) -> NnUNetFolders:
    return make_nnunet_folders(tmp_path)


@dataclass
class TrainedModel:
    folders: NnUNetFolders
    dataset_folder: Path
    model_folder: Path
    structures: List[str]


@pytest.fixture(scope="session")
def trained_openvocab_model(tmp_path_factory) -> TrainedModel:
    """A width-8 STUNet OpenVocab model trained ~5 CPU minutes on the real example CT (fold 'all').

    ``OPENVOCAB_TEST_MODEL_DIR`` (developers only; CI leaves it unset) keeps the model in that folder and reuses it
    when a finished checkpoint is already there, so parallel work on one machine trains it once."""
    reuse_root = os.environ.get("OPENVOCAB_TEST_MODEL_DIR")
    root = Path(reuse_root) if reuse_root else tmp_path_factory.mktemp("trained_model")
    folders = make_nnunet_folders(root)
    model_folder = (folders.results / f"Dataset{LEARNING_DATASET_ID:03d}_OpenVocabExample"
                    / f"{LEARNING_TRAINER}__{LEARNING_PLANS}__3d_fullres")
    if reuse_root and (model_folder / "fold_all" / "checkpoint_final.pth").is_file():
        dataset_folder = folders.raw / model_folder.parent.name
        return TrainedModel(folders, dataset_folder, model_folder, list(DEFAULT_STRUCTURES))
    dataset_folder = build_example_dataset(folders.raw, LEARNING_DATASET_ID)
    folders.run("nnUNetv2_openvocab_plan_and_preprocess", "-d", str(LEARNING_DATASET_ID), "--stunet", "B", "--width", "8", "--text-encoder", "minilm",
                "--patch-size", *PATCH_SIZE, "-np", "2", "--no_pbar")
    folders.run("nnUNetv2_train", str(LEARNING_DATASET_ID), "3d_fullres", "all", "-tr", LEARNING_TRAINER,
                "-p", LEARNING_PLANS, "-device", "cpu", timeout=1500)
    assert model_folder.parent.name == dataset_folder.name, dataset_folder
    return TrainedModel(folders, dataset_folder, model_folder, list(DEFAULT_STRUCTURES))
