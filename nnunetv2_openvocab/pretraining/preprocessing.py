"""CT volume -> image-encoder input, exactly as nnU-Net preprocesses for the encoder's plans.

nnU-Net's own preprocessor (the configuration's ``preprocessor_name``) does the work: reader from the
plans, transpose, crop to non-zero, intensity normalisation with the plans' schemes and
foreground intensity properties (CTNormalization: clip to the 0.5/99.5 percentiles, z-score), and
the plans' resampling function. Only the target spacing is replaced (1.5 mm isotropic by default,
as in the paper). The result is then centre padded/cropped to the patch size; augmented views
shift that window, mirror and rescale intensities.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from nnunetv2_openvocab.pretraining.config import PreprocessingConfig, config_to_dict
from nnunetv2_openvocab.pretraining.manifest import volume_digest

# plans entries that decide the encoder input; part of the feature cache key
NNUNET_PLANS_KEYS = ("transpose_forward", "image_reader_writer", "foreground_intensity_properties_per_channel")
NNUNET_CONFIGURATION_KEYS = ("preprocessor_name", "normalization_schemes", "use_mask_for_norm",
                             "resampling_fn_data", "resampling_fn_data_kwargs")


def pad_or_crop(volume: np.ndarray, size: Sequence[int], offset: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """(C, *spatial) -> (C, *size): a window centred on the volume, moved by `offset` voxels; outside is 0."""
    output = np.zeros((volume.shape[0], *size), dtype=volume.dtype)
    source, target = [slice(None)], [slice(None)]
    for extent, window, shift in zip(volume.shape[1:], size, offset):
        start = (extent - window) // 2 + int(shift)  # window start in volume coordinates, may be negative
        low, high = max(start, 0), min(start + window, extent)
        source.append(slice(low, max(high, low)))
        target.append(slice(low - start, max(high, low) - start))
    output[tuple(target)] = volume[tuple(source)]
    return output


def volume_seed(volume: str) -> int:
    """Per-volume augmentation seed, from the path so that it does not depend on manifest order."""
    return int(volume_digest(volume)[:8], 16)


def make_view(volume: np.ndarray, config: PreprocessingConfig, view: int, seed_of_volume: int) -> np.ndarray:
    """View 0 is the centred window; views >= 1 are augmentations seeded by (config.augmentation_seed, seed_of_volume, view)."""
    if view == 0:
        return pad_or_crop(volume, config.patch_size)
    rng = np.random.default_rng([config.augmentation_seed, seed_of_volume, view])
    shift = rng.integers(-config.max_shift_voxels, config.max_shift_voxels + 1, size=3)
    patch = pad_or_crop(volume, config.patch_size, shift)
    if config.mirror:
        mirrored_axes = [axis + 1 for axis in range(3) if rng.random() < 0.5]
        patch = np.flip(patch, axis=mirrored_axes) if mirrored_axes else patch
    scale = rng.uniform(1 - config.intensity_scale, 1 + config.intensity_scale)
    offset = rng.uniform(-config.intensity_shift, config.intensity_shift)
    return np.ascontiguousarray(patch * scale + offset, dtype=np.float32)


class VolumePreprocessor:
    """Preprocess volumes with nnU-Net for `configuration` of `plans_file`, at `config.target_spacing`."""

    def __init__(self, plans_file: str | Path, configuration: str, config: PreprocessingConfig):
        self.plans_manager = PlansManager(str(plans_file))
        try:
            base = self.plans_manager.get_configuration(configuration)
        except RuntimeError as error:
            raise ValueError(f"{plans_file}: {error} Pass one of them as --configuration.") from error
        self.configuration_name = configuration
        # override the spacing only: everything else (normalisation, resampling order) stays the plans'
        self.configuration_manager = ConfigurationManager({**base.configuration,
                                                           "spacing": list(config.target_spacing)})
        self.config = config

    @property
    def input_channels(self) -> int:
        return len(self.configuration_manager.normalization_schemes)

    def description(self) -> dict:
        """Everything that determines the encoder input, JSON-serialisable (it keys the feature cache)."""
        plans, configuration = self.plans_manager.plans, self.configuration_manager.configuration
        return {
            "config": config_to_dict(self.config),
            "configuration": self.configuration_name,
            "plans": {key: plans.get(key) for key in NNUNET_PLANS_KEYS},
            "plans_configuration": {key: configuration.get(key) for key in NNUNET_CONFIGURATION_KEYS},
        }

    def preprocess(self, volume_path: str) -> np.ndarray:
        """(C, *spatial) float32, normalised and resampled, before pad/crop."""
        preprocessor = self.configuration_manager.preprocessor_class(verbose=False)
        data, _, _ = preprocessor.run_case([volume_path], None, self.plans_manager, self.configuration_manager,
                                           dataset_json={})
        return data.astype(np.float32, copy=False)

    def views(self, volume_path: str, views: Sequence[int]) -> np.ndarray:
        """(len(views), C, *patch_size): the requested views of one volume, preprocessed once."""
        volume = self.preprocess(volume_path)
        return np.stack([make_view(volume, self.config, view, volume_seed(volume_path)) for view in views])
