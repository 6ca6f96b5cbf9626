"""Where training gets image embeddings: the feature cache, or volumes encoded on the fly.

The cache is the normal route (locked encoder: epochs cost only the text side). On-the-fly encoding
is needed for --unlock-image-encoder, and is the baseline the cache is benchmarked against.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch

from nnunetv2_openvocab.safe_loading import read_safetensors
from nnunetv2_openvocab.pretraining.config import PreprocessingConfig
from nnunetv2_openvocab.pretraining.data import (
    ImageSource, RegionViewSource, VolumeViewSource, cached_embedding_source)
from nnunetv2_openvocab.pretraining.feature_cache import ENCODER_WEIGHTS, FeatureCache
from nnunetv2_openvocab.pretraining.image_encoder import (
    ImageEncoderInfo, PooledImageEncoder, encode_locked, load_image_encoder_from_nnunet, random_image_encoder,
    resolve_nnunet_model)
from nnunetv2_openvocab.pretraining.manifest import ManifestEntry
from nnunetv2_openvocab.pretraining.preprocessing import VolumePreprocessor


@dataclass
class ImageSide:
    train_source: ImageSource
    validation_source: ImageSource
    num_views: int
    info: ImageEncoderInfo
    provenance: dict  # for run.json: the cache (path, key) or the preprocessing description
    initial_encoder_state: dict[str, torch.Tensor]  # conv_blocks_context.* weights the run starts from
    encoder: Optional[PooledImageEncoder] = None  # set when volumes are encoded on the fly

    @property
    def yields_volumes(self) -> bool:
        return self.encoder is not None

    def validation_features(self, num_samples: int, encoder: Optional[torch.nn.Module],
                            device: torch.device) -> torch.Tensor:
        """(N, D) embeddings of view 0 of every validation sample; `encoder` is the (possibly trained) encoder."""
        if encoder is None:
            return torch.stack([self.validation_source(index, 0) for index in range(num_samples)]).to(device)
        encoder.eval()
        # one volume in memory at a time: a full-size validation set would not fit
        return torch.cat([encode_locked(encoder, self.validation_source(index, 0)[None], device)
                          for index in range(num_samples)])


def cached_image_side(cache_folder: str | Path, train: Sequence[ManifestEntry],
                      validation: Sequence[ManifestEntry]) -> ImageSide:
    cache = FeatureCache(cache_folder)
    manifest = cache.read_manifest()
    train_embeddings = cache.load([entry.volume for entry in train])
    validation_embeddings = cache.load([entry.volume for entry in validation])
    info = ImageEncoderInfo(**manifest["encoder"])
    state = read_safetensors(cache.folder / ENCODER_WEIGHTS)
    return ImageSide(cached_embedding_source(train_embeddings), cached_embedding_source(validation_embeddings),
                     num_views=manifest["num_views"], info=info,
                     provenance={"cache": str(Path(cache_folder).resolve()), "cache_key": manifest["cache_key"]},
                     initial_encoder_state=state)


def on_the_fly_image_side(encoder_checkpoint: Optional[str | Path], plans: Optional[str | Path], configuration: str,
                          preprocessing: PreprocessingConfig, train: Sequence[ManifestEntry],
                          validation: Sequence[ManifestEntry], seed: int = 0, with_regions: bool = False) -> ImageSide:
    """Volumes encoded by the checkpoint's encoder, or (encoder_checkpoint None) a random one built from `plans`;
    `with_regions`: training samples also carry their regions' masks in the same view (RegionViewSource)."""
    if encoder_checkpoint is None:
        plans_file = Path(plans)
        encoder, info = random_image_encoder(plans_file, configuration, seed)
    else:
        checkpoint, plans_file = resolve_nnunet_model(encoder_checkpoint, plans)
        encoder, info = load_image_encoder_from_nnunet(checkpoint, plans_file, configuration)
    preprocessor = VolumePreprocessor(plans_file, configuration, preprocessing)
    train_source = (RegionViewSource(train, preprocessor) if with_regions
                    else VolumeViewSource([entry.volume for entry in train], preprocessor))
    return ImageSide(train_source,
                     VolumeViewSource([entry.volume for entry in validation], preprocessor),
                     num_views=preprocessing.num_views, info=info,
                     provenance={"preprocessing": preprocessor.description()},
                     initial_encoder_state=encoder.state_dict(), encoder=encoder)

