"""Fine-grained alignment (Table VIII row 4): manifest regions, region pooling and the region loss."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nnunetv2_openvocab.pretraining.config import PreprocessingConfig, TrainConfig
from nnunetv2_openvocab.pretraining.image_encoder import region_features
from nnunetv2_openvocab.pretraining.loss import build_loss
from nnunetv2_openvocab.pretraining.manifest import Region, read_manifest
from nnunetv2_openvocab.pretraining.preprocessing import make_view, view_geometry, window


def test_region_features_average_inside_the_downsampled_mask():
    feature_map = torch.arange(2 * 2 * 2 * 2, dtype=torch.float32).view(2, 2, 2, 2)  # (C, x, y, z)
    masks = torch.zeros(3, 4, 4, 4, dtype=torch.bool)
    masks[0, :2, :2, :2] = True            # exactly feature cell (0, 0, 0)
    masks[1, :2, :2, :] = True             # cells (0, 0, 0) and (0, 0, 1)
    pooled, kept = region_features(feature_map, masks)  # region 2 is empty: dropped
    assert kept.tolist() == [True, True, False]
    torch.testing.assert_close(pooled[0], feature_map[:, 0, 0, 0])
    torch.testing.assert_close(pooled[1], feature_map[:, 0, 0, :].mean(dim=1))


def test_partial_cells_weigh_by_the_share_they_cover():
    feature_map = torch.tensor([[[[0.0, 8.0]]]])  # (1, 1, 1, 2)
    mask = torch.zeros(1, 2, 2, 4, dtype=torch.bool)
    mask[0, :, :, 0:2] = True   # all of cell 0
    mask[0, 0, 0, 2] = True     # 1/8 of cell 1
    pooled, _ = region_features(feature_map, mask)
    torch.testing.assert_close(pooled, torch.tensor([[8.0 * (1 / 8) / (1 + 1 / 8)]]))


def test_region_loss_is_added_and_prefers_matching_pairs():
    loss = build_loss(TrainConfig(loss="clip"))
    images, reports = torch.randn(2, 8), torch.randn(2, 8)
    regions = torch.eye(3, 8)
    matched = loss(images, reports, None, regions, regions.clone())
    shuffled = loss(images, reports, None, regions, regions[[1, 2, 0]])
    assert set(matched) == {"clip_loss", "region_loss"}
    assert matched["region_loss"] < shuffled["region_loss"]
    assert set(loss(images, reports)) == {"clip_loss"}


def test_label_view_follows_the_image_view():
    config = PreprocessingConfig(patch_size=(6, 6, 6), num_augmented_views=3, max_shift_voxels=2)
    volume = np.random.default_rng(0).normal(size=(1, 8, 8, 8)).astype(np.float32)
    labels = (volume > 0.5).astype(np.int8)
    for view in range(config.num_views):
        geometry = view_geometry(config, view, seed_of_volume=7)
        image = make_view(volume, config, view, 7)
        label = window(labels, config, geometry)
        # intensities are rescaled, never moved: the thresholded view equals the label view
        np.testing.assert_array_equal((image - geometry.offset) / geometry.scale > 0.5, label.astype(bool))


def test_manifest_regions_are_read_and_checked(tmp_path):
    mask = tmp_path / "labels.nii.gz"
    mask.write_bytes(b"")
    good = {"volume": "ct.nii.gz", "report": "r", "captions": [],
            "regions": [{"mask": "labels.nii.gz", "label": 5, "caption": "The liver is normal."}]}
    path = tmp_path / "manifest.jsonl"
    path.write_text(json.dumps(good) + "\n")
    assert read_manifest(path)[0].regions == (Region(str(mask), 5, "The liver is normal."),)
    for bad, message in [({"mask": "labels.nii.gz", "label": "5", "caption": "x"}, "regions\\[0\\]"),
                         ({"mask": "missing.nii.gz", "label": 5, "caption": "x"}, "does not exist"),
                         ({"mask": "labels.nii.gz", "label": 5, "caption": " "}, "non-empty caption")]:
        path.write_text(json.dumps({**good, "regions": [bad]}) + "\n")
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            read_manifest(path)


@pytest.mark.parametrize("flags, message", [
    (["--random-image-encoder"], "must be trained: add --unlock-image-encoder"),
    (["--random-image-encoder", "--unlock-image-encoder", "--region-alignment"], "no training entry"),
    (["--unlock-image-encoder", "--region-alignment", "--cache", "cache"], "no training entry"),
])
def test_random_encoder_and_region_alignment_refuse_unusable_settings(tmp_path, flags, message):
    from nnunetv2_openvocab.commands.pretrain import main

    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"volume": f"v{i}.nii.gz", "report": "r", "captions": ["c"]}) + "\n"
                                for i in range(2)))
    (tmp_path / "plans.json").write_text("{}")
    with pytest.raises(SystemExit) as exit_info:  # one line on stderr, exit status 1
        main(["train", "--manifest", str(manifest), "--out", str(tmp_path / "run"),
              "--plans", str(tmp_path / "plans.json"), "--val-fraction", "0", *flags])
    assert message in str(exit_info.value)
