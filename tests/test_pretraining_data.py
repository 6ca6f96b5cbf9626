"""Manifest reading and splitting, caption sampling, the global batch order and config round trips."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from nnunetv2_openvocab.pretraining.config import PreprocessingConfig, TrainConfig, config_to_dict, load_config
from nnunetv2_openvocab.pretraining.data import (
    ContrastiveDataset, GlobalBatchSampler, cached_embedding_source, collate, sample_captions)
from nnunetv2_openvocab.pretraining.manifest import ManifestEntry, read_manifest, split_train_validation
from test_pretraining_support import synthetic_caption_records, write_manifest


def test_manifest_paths_resolve_against_its_folder_and_errors_name_line_and_field(tmp_path):
    manifest = write_manifest(tmp_path / "sub" / "manifest.jsonl", synthetic_caption_records(2))
    entries = read_manifest(manifest)
    assert entries[0].volume == str(tmp_path / "sub" / "volume_000.nii.gz")
    assert entries[1].captions == ("The spleen is atrophic.", "No abnormality of the aorta.")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"volume": "a.nii.gz", "report": "r", "captions": []}) + "\n"
                      + json.dumps({"volume": "b.nii.gz", "report": 3, "captions": []}) + "\n")
    with pytest.raises(ValueError, match=r"broken.jsonl, line 2: field 'report' must be a str"):
        read_manifest(broken)


def test_validation_split_depends_on_volume_names_only(tmp_path):
    records = synthetic_caption_records(20)
    forward = read_manifest(write_manifest(tmp_path / "a" / "manifest.jsonl", records))
    backward = read_manifest(write_manifest(tmp_path / "a" / "reversed.jsonl", records[::-1]))
    train, validation = split_train_validation(forward, 0.2)
    assert len(validation) == 4 and len(train) == 16
    assert {e.volume for e in split_train_validation(backward, 0.2)[1]} == {e.volume for e in validation}
    moved = read_manifest(write_manifest(tmp_path / "b" / "manifest.jsonl", records))
    assert {e.name for e in split_train_validation(moved, 0.2)[1]} == {e.name for e in validation}


def test_captions_are_sampled_without_replacement_when_possible_and_fall_back_to_the_report():
    entry = ManifestEntry("/v", "the report", ("a", "b", "c", "d"), "v")
    sampled = sample_captions(entry, 3, np.random.default_rng(0))
    assert len(set(sampled)) == 3 and set(sampled) <= set(entry.captions)
    assert len(sample_captions(ManifestEntry("/v", "r", ("only",), "v"), 3, np.random.default_rng(0))) == 3
    assert sample_captions(ManifestEntry("/v", "the report", (), "v"), 2, np.random.default_rng(0)) == ["the report"] * 2
    assert sample_captions(entry, 0, np.random.default_rng(0)) == []


def test_samples_depend_only_on_seed_epoch_and_index(tmp_path):
    entries = read_manifest(write_manifest(tmp_path / "manifest.jsonl", synthetic_caption_records(6)))
    embeddings = torch.randn(6, 4, 8)
    dataset = ContrastiveDataset(entries, cached_embedding_source(embeddings), 4, 3, seed=0)
    first, again = dataset[(2, 5)], dataset[(2, 5)]
    assert torch.equal(first[0], again[0]) and first[1:] == again[1:]
    views = {int((embeddings[5] == dataset[(epoch, 5)][0]).all(dim=1).nonzero()) for epoch in range(20)}
    assert len(views) > 1  # the view changes between epochs
    batch = collate([dataset[(0, i)] for i in range(4)])
    assert batch.images.shape == (4, 8) and len(batch.reports) == 4
    assert len(batch.captions) == 3 and all(len(slot) == 4 for slot in batch.captions)
    clip_only = ContrastiveDataset(entries, cached_embedding_source(embeddings), 4, 0, seed=0)
    assert collate([clip_only[(0, i)] for i in range(2)]).captions is None


def test_rank_slices_concatenate_to_the_single_process_batches():
    single = GlobalBatchSampler(23, 6, rank=0, world_size=1, seed=4)
    ranks = [GlobalBatchSampler(23, 3, rank=r, world_size=2, seed=4) for r in range(2)]
    assert single.batches_per_epoch == ranks[0].batches_per_epoch == 3  # 23 // 6, the rest is dropped
    for epoch in (0, 1):
        expected = single.batches(epoch)
        joined = [a + b for a, b in zip(ranks[0].batches(epoch), ranks[1].batches(epoch))]
        assert joined == expected
        assert ranks[1].batches(epoch, start=2) == ranks[1].batches(epoch)[2:]
    assert single.batches(0) != single.batches(1)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        GlobalBatchSampler(5, 3, rank=0, world_size=2, seed=0)


def test_configs_round_trip_through_json_and_reject_unknown_fields(tmp_path):
    config = replace(TrainConfig(), loss="clip", text_trainable_layers=2)
    (tmp_path / "train.json").write_text(json.dumps(config_to_dict(config)))
    assert load_config(TrainConfig, tmp_path / "train.json") == config
    preprocessing = PreprocessingConfig(target_spacing=[2, 2, 2], patch_size=[96, 96, 96])
    (tmp_path / "pre.json").write_text(json.dumps(config_to_dict(preprocessing)))
    assert load_config(PreprocessingConfig, tmp_path / "pre.json") == preprocessing
    (tmp_path / "typo.json").write_text(json.dumps({"bach_size": 4}))
    with pytest.raises(ValueError, match="unknown field.*bach_size"):
        load_config(TrainConfig, tmp_path / "typo.json")


def test_mgcl_refuses_a_manifest_without_captions_and_clip_accepts_it(tmp_path, capsys):
    """The CT-RATE converter writes no captions: MGCL must not quietly become CLIP on such a manifest."""
    from nnunetv2_openvocab.commands.pretrain import main

    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"volume": f"v{i}.nii.gz", "report": "Findings: normal.", "captions": []})
                                + "\n" for i in range(2)))
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--manifest", str(manifest), "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "none")])
    assert exit_info.value.code not in (0, None)
    said = str(exit_info.value) + capsys.readouterr().err
    assert "no entry has captions" in said and "--loss clip" in said and "Traceback" not in said
    records = [ManifestEntry("v.nii.gz", "r", (), "v")]
    from nnunetv2_openvocab.pretraining.manifest import require_captions_for_mgcl
    require_captions_for_mgcl(records, "clip", manifest)  # CLIP needs no captions
    with pytest.raises(ValueError, match="no entry has captions"):
        require_captions_for_mgcl(records, "mgcl", manifest)
