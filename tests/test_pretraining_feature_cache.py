"""The feature cache on real CT: three axial slabs of the bundled TotalSegmentator example CT, preprocessed by
nnU-Net with tiny-STUNet plans (CTNormalization from the scan's own intensities; 6 mm, 48^3 instead of the
paper's 1.5 mm, 220^3 to stay fast) and encoded by a randomly initialised width-8 STUNet.
"""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from safetensors import safe_open

from nnunetv2_openvocab.pretraining.cache_features import cache_features
from nnunetv2_openvocab.pretraining.config import PreprocessingConfig
from nnunetv2_openvocab.pretraining.data import VolumeViewSource
from nnunetv2_openvocab.pretraining.feature_cache import CACHE_FORMAT, FeatureCache, FeatureCacheError
from nnunetv2_openvocab.pretraining.image_encoder import encode_locked, load_image_encoder_from_nnunet, lock
from nnunetv2_openvocab.pretraining.manifest import read_manifest
from nnunetv2_openvocab.pretraining.preprocessing import VolumePreprocessor, make_view, pad_or_crop
from test_pretraining_support import one_torch_thread  # noqa: F401 (autouse fixture)
from test_pretraining_support import synthetic_caption_records, write_ct_slabs, write_manifest, write_tiny_nnunet_model

PREPROCESSING = PreprocessingConfig(target_spacing=(6.0, 6.0, 6.0), patch_size=(48, 48, 48), num_augmented_views=2,
                                    max_shift_voxels=4)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("feature_cache")
    records = synthetic_caption_records(3)
    for record, volume in zip(records, write_ct_slabs(folder / "volumes", 3)):
        record["volume"] = f"volumes/{volume.name}"  # relative to the manifest's folder
    checkpoint = write_tiny_nnunet_model(folder / "model")
    manifest = write_manifest(folder / "manifest.jsonl", records)
    written = cache_features(manifest, folder / "model", folder / "cache", PREPROCESSING, num_workers=0)
    return {"folder": folder, "manifest": manifest, "checkpoint": checkpoint, "written": written}


def test_every_volume_gets_all_views_and_they_equal_on_the_fly_encoding(setup):
    assert setup["written"] == 3
    cache = FeatureCache(setup["folder"] / "cache")
    info = cache.read_manifest()
    assert info["format"] == CACHE_FORMAT and info["num_views"] == 3
    assert info["encoder"]["embedding_dim"] == 64 and info["encoder"]["checkpoint"] == str(setup["checkpoint"])
    assert info["preprocessing"]["plans_configuration"]["normalization_schemes"] == ["CTNormalization"]
    volumes = [entry.volume for entry in read_manifest(setup["manifest"])]
    embeddings = cache.load(volumes)
    assert embeddings.shape == (3, 3, 64) and embeddings.dtype == torch.float32
    assert not torch.allclose(embeddings[0, 0], embeddings[1, 0]) and not torch.allclose(embeddings[0, 0], embeddings[0, 1])
    with safe_open(str(cache.entry_path(volumes[0])), framework="pt") as handle:
        assert handle.metadata() == {"volume": volumes[0], "cache_key": info["cache_key"]}

    encoder, _ = load_image_encoder_from_nnunet(setup["checkpoint"], setup["folder"] / "model" / "plans.json",
                                                "3d_fullres")
    source = VolumeViewSource(volumes, VolumePreprocessor(setup["folder"] / "model" / "plans.json", "3d_fullres",
                                                          PREPROCESSING))
    on_the_fly = encode_locked(lock(encoder), source(1, 2)[None], torch.device("cpu"))[0]
    torch.testing.assert_close(on_the_fly, embeddings[1, 2], atol=1e-5, rtol=1e-5)


def test_rerun_resumes_and_shards_split_the_manifest(setup, tmp_path):
    arguments = (setup["manifest"], setup["folder"] / "model")
    assert cache_features(*arguments, setup["folder"] / "cache", PREPROCESSING, num_workers=0) == 0
    assert cache_features(*arguments, tmp_path / "cache", PREPROCESSING, shard=1, num_shards=2, num_workers=0) == 1
    volumes = [entry.volume for entry in read_manifest(setup["manifest"])]
    assert FeatureCache(tmp_path / "cache").load(volumes[1:2]).shape == (1, 3, 64)  # shard 1 of 2 = volume 1
    with pytest.raises(FeatureCacheError, match="2 of 3 volumes"):
        FeatureCache(tmp_path / "cache").load(volumes)


@pytest.mark.parametrize("change", ["preprocessing", "encoder"])
def test_a_new_encoder_or_preprocessing_makes_old_entries_stale(setup, tmp_path, change):
    cache = tmp_path / "cache"
    cache_features(setup["manifest"], setup["folder"] / "model", cache, PREPROCESSING, shard=0, num_shards=3,
                   num_workers=0)
    model, preprocessing = setup["folder"] / "model", PREPROCESSING
    if change == "encoder":
        model = tmp_path / "other_model"
        write_tiny_nnunet_model(model, seed=1)
    else:
        preprocessing = replace(PREPROCESSING, patch_size=(40, 40, 40))
    first_volume = [read_manifest(setup["manifest"])[0].volume]
    old_key = FeatureCache(cache).read_manifest()["cache_key"]
    assert cache_features(setup["manifest"], model, cache, preprocessing, shard=1, num_shards=3, num_workers=0) == 1
    assert FeatureCache(cache).read_manifest()["cache_key"] != old_key
    with pytest.raises(FeatureCacheError, match="1 of 1 volumes have no valid entry"):
        FeatureCache(cache).load(first_volume)  # written under the old key


def test_missing_volumes_are_named(setup, tmp_path):
    manifest = write_manifest(tmp_path / "manifest.jsonl", synthetic_caption_records(2))
    with pytest.raises(FileNotFoundError, match="2 volumes listed in .*volume_000.nii.gz"):
        cache_features(manifest, setup["folder"] / "model", tmp_path / "cache", PREPROCESSING, num_workers=0)


def test_pad_or_crop_centres_and_shifts_the_window():
    volume = torch.arange(2 * 5 * 6 * 7, dtype=torch.float32).reshape(2, 5, 6, 7).numpy()
    padded = pad_or_crop(volume, (9, 6, 3))  # pad, keep, crop
    assert padded.shape == (2, 9, 6, 3)
    assert (padded[:, 2:7, :, :] == volume[:, :, :, 2:5]).all() and (padded[:, :2] == 0).all()
    shifted = pad_or_crop(volume, (5, 6, 3), offset=(0, 0, 2))
    assert (shifted == volume[:, :, :, 4:7]).all()


def test_views_are_reproducible_and_view_0_is_unaugmented():
    volume = torch.randn(1, 30, 30, 30, generator=torch.Generator().manual_seed(0)).numpy()
    config = PreprocessingConfig(patch_size=(24, 24, 24), num_augmented_views=2)
    assert (make_view(volume, config, 0, seed_of_volume=5) == pad_or_crop(volume, (24, 24, 24))).all()
    assert (make_view(volume, config, 1, 5) == make_view(volume, config, 1, 5)).all()
    assert not (make_view(volume, config, 1, 5) == make_view(volume, config, 2, 5)).all()
    assert not (make_view(volume, config, 1, 5) == make_view(volume, config, 1, 6)).all()
