"""On-disk cache of pooled image embeddings from the locked encoder (written by ``cache-features``).

Layout of a cache folder:
  cache.json                 {"format": "nnunetv2_openvocab.feature_cache/1", "cache_key": sha256 hex,
                              "encoder": ImageEncoderInfo fields (fingerprint, arch_kwargs, ...),
                              "preprocessing": VolumePreprocessor.description(), "num_views": V}
  image_encoder.safetensors  the encoder's conv_blocks_context.* weights (what export ships)
  features/<sha256(volume path)[:32]>.safetensors
                             tensor "embeddings": float32, shape (V, D); view 0 unaugmented, views
                             1..V-1 augmented (see preprocessing.make_view); D = encoder bottleneck width.
                             metadata {"volume": absolute path, "cache_key": key of the run that wrote it}
cache_key = sha256 over the encoder fingerprint and the preprocessing description, so changing the
encoder weights, the plans' normalisation/resampling, the spacing, patch size or augmentation
invalidates every entry: an entry counts only if its cache_key equals cache.json's. Every file is
written to a temporary name and renamed, so an interrupted (or concurrent, sharded) run leaves only
complete entries, and a rerun computes just the missing or stale ones.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from nnunetv2_openvocab.atomic_files import atomic_path, write_json_atomic
from nnunetv2_openvocab.user_errors import UserError
from nnunetv2_openvocab.pretraining.image_encoder import ImageEncoderInfo
from nnunetv2_openvocab.pretraining.manifest import volume_digest

logger = logging.getLogger(__name__)

CACHE_FORMAT = "nnunetv2_openvocab.feature_cache/1"
CACHE_MANIFEST = "cache.json"
ENCODER_WEIGHTS = "image_encoder.safetensors"
EMBEDDINGS_KEY = "embeddings"


class FeatureCacheError(UserError, RuntimeError):
    """The cache is missing, stale or incomplete for the requested volumes."""


def compute_cache_key(encoder_fingerprint: str, preprocessing: dict) -> str:
    payload = json.dumps({"encoder": encoder_fingerprint, "preprocessing": preprocessing}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def save_tensors_atomic(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    with atomic_path(path) as tmp:
        save_file({name: tensor.contiguous() for name, tensor in tensors.items()}, str(tmp), metadata=metadata)


class FeatureCache:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def entry_path(self, volume: str) -> Path:
        return self.folder / "features" / f"{volume_digest(volume)[:32]}.safetensors"

    def read_manifest(self) -> dict:
        path = self.folder / CACHE_MANIFEST
        if not path.is_file():
            raise FeatureCacheError(f"{self.folder} is no feature cache ({CACHE_MANIFEST} is missing); build it with "
                                    f"nnUNetv2_openvocab_pretrain cache-features --out {self.folder}.")
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != CACHE_FORMAT:
            raise FeatureCacheError(f"{path}: field 'format' is {manifest.get('format')!r}, expected {CACHE_FORMAT!r}; "
                                    f"rebuild the cache with this version's cache-features.")
        return manifest

    def prepare(self, info: ImageEncoderInfo, preprocessing: dict, num_views: int,
                encoder_state: dict[str, torch.Tensor]) -> str:
        """Write cache.json and the encoder weights for this encoder + preprocessing; returns the cache key.

        A different key than the one on disk means every existing entry is stale (recomputed on demand).
        """
        key = compute_cache_key(info.fingerprint, preprocessing)
        path = self.folder / CACHE_MANIFEST
        if path.is_file():
            previous = json.loads(path.read_text(encoding="utf-8")).get("cache_key")
            if previous != key:
                logger.warning("%s was built with another encoder or preprocessing; its entries are stale and "
                               "will be recomputed.", self.folder)
        save_tensors_atomic(self.folder / ENCODER_WEIGHTS, encoder_state, metadata={"fingerprint": info.fingerprint})
        write_json_atomic(path, {"format": CACHE_FORMAT, "cache_key": key, "encoder": dataclasses.asdict(info),
                                 "preprocessing": preprocessing, "num_views": num_views})
        return key

    def has_entry(self, volume: str, cache_key: str) -> bool:
        path = self.entry_path(volume)
        if not path.is_file():
            return False
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return metadata.get("cache_key") == cache_key and metadata.get("volume") == volume

    def write_entry(self, volume: str, cache_key: str, embeddings: torch.Tensor) -> None:
        """embeddings: (V, D) float32."""
        save_tensors_atomic(self.entry_path(volume), {EMBEDDINGS_KEY: embeddings.to(torch.float32).cpu()},
                            metadata={"volume": volume, "cache_key": cache_key})

    def load(self, volumes: Sequence[str]) -> torch.Tensor:
        """(N, V, D) embeddings of `volumes`, in order; raises FeatureCacheError naming what is missing."""
        manifest = self.read_manifest()
        key = manifest["cache_key"]
        missing = [volume for volume in volumes if not self.has_entry(volume, key)]
        if missing:
            raise FeatureCacheError(
                f"{len(missing)} of {len(volumes)} volumes have no valid entry in {self.folder} (e.g. {missing[:3]}); "
                f"run nnUNetv2_openvocab_pretrain cache-features with this manifest and --out {self.folder}: it "
                f"resumes and computes only missing or stale entries.")
        if not volumes:
            return torch.empty(0, manifest["num_views"], manifest["encoder"]["embedding_dim"])
        embeddings = []
        for volume in volumes:
            with safe_open(str(self.entry_path(volume)), framework="pt") as handle:
                embeddings.append(handle.get_tensor(EMBEDDINGS_KEY))
        return torch.stack(embeddings)  # N x (V, D) -> (N, V, D)
