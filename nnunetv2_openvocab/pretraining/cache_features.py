"""The ``cache-features`` stage: encode every manifest volume once with the locked encoder.

Sharded (volume i belongs to shard i % num_shards, so shards can run on different machines into
one cache folder) and resumable (finished entries with the current cache key are skipped).
Preprocessing runs in DataLoader workers while the encoder runs in the main process.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from nnunetv2_openvocab.pretraining.config import PreprocessingConfig
from nnunetv2_openvocab.pretraining.feature_cache import FeatureCache
from nnunetv2_openvocab.pretraining.image_encoder import (
    encode_locked, load_image_encoder_from_nnunet, lock, resolve_nnunet_model)
from nnunetv2_openvocab.pretraining.manifest import read_manifest
from nnunetv2_openvocab.pretraining.preprocessing import VolumePreprocessor

logger = logging.getLogger(__name__)


class VolumeViews(Dataset):
    """Item i: (volume path, all views of volume i as (V, C, *patch) float32 tensor)."""

    def __init__(self, volumes: list[str], preprocessor: VolumePreprocessor):
        self.volumes, self.preprocessor = volumes, preprocessor

    def __len__(self) -> int:
        return len(self.volumes)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor]:
        volume = self.volumes[index]
        views = self.preprocessor.views(volume, range(self.preprocessor.config.num_views))
        return volume, torch.from_numpy(views)


def cache_features(manifest: str | Path, encoder_checkpoint: str | Path, out: str | Path,
                   preprocessing: PreprocessingConfig = PreprocessingConfig(), plans: Optional[str | Path] = None,
                   configuration: str = "3d_fullres", shard: int = 0, num_shards: int = 1,
                   device: str = "cpu", num_workers: int = 2) -> int:
    """Compute the missing cache entries of this shard; returns how many were written."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"--shard must be in [0, --num-shards), got shard {shard} of {num_shards}.")
    checkpoint, plans_file = resolve_nnunet_model(encoder_checkpoint, plans)
    encoder, info = load_image_encoder_from_nnunet(checkpoint, plans_file, configuration)
    encoder = lock(encoder).to(device)
    preprocessor = VolumePreprocessor(plans_file, configuration, preprocessing)
    cache = FeatureCache(out)
    key = cache.prepare(info, preprocessor.description(), preprocessing.num_views, encoder.state_dict())

    volumes = [entry.volume for index, entry in enumerate(read_manifest(manifest)) if index % num_shards == shard]
    todo = [volume for volume in volumes if not cache.has_entry(volume, key)]
    absent = [volume for volume in todo if not Path(volume).is_file()]
    if absent:
        raise FileNotFoundError(f"{len(absent)} volumes listed in {manifest} do not exist (e.g. {absent[:3]}); fix "
                                f"their 'volume' paths (relative paths are relative to the manifest's folder).")
    logger.info("Shard %d/%d: %d volumes, %d already cached, %d to encode (%d views each).", shard, num_shards,
                len(volumes), len(volumes) - len(todo), len(todo), preprocessing.num_views)
    loader = DataLoader(VolumeViews(todo, preprocessor), batch_size=None, num_workers=num_workers)
    for volume, views in tqdm(loader, total=len(todo), desc=f"cache-features shard {shard}/{num_shards}"):
        cache.write_entry(volume, key, encode_locked(encoder, views, torch.device(device)).cpu())
    return len(todo)
