"""CT volume -> image-encoder input, exactly as nnU-Net preprocesses for the encoder's plans.

nnU-Net's own preprocessor (the configuration's ``preprocessor_name``) does the work: reader from the
plans, transpose, crop to non-zero, intensity normalisation with the plans' schemes and
foreground intensity properties (CTNormalization: clip to the 0.5/99.5 percentiles, z-score), and
the plans' resampling function. Only the target spacing is replaced (1.5 mm isotropic by default,
as in the paper). The result is then centre padded/cropped to the patch size; augmented views
shift that window, mirror and rescale intensities.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

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


@dataclass(frozen=True)
class ViewGeometry:
    shift: tuple[int, ...]  # window offset in voxels per axis
    mirrored_axes: tuple[int, ...]  # axes of a (C, *spatial) array
    scale: float
    offset: float


def view_geometry(config: PreprocessingConfig, view: int, seed_of_volume: int) -> ViewGeometry:
    """View 0 is the centred window; views >= 1 are augmentations seeded by (config.augmentation_seed, seed_of_volume, view)."""
    if view == 0:
        return ViewGeometry((0, 0, 0), (), 1.0, 0.0)
    rng = np.random.default_rng([config.augmentation_seed, seed_of_volume, view])
    shift = tuple(int(s) for s in rng.integers(-config.max_shift_voxels, config.max_shift_voxels + 1, size=3))
    mirrored_axes = tuple(axis + 1 for axis in range(3) if rng.random() < 0.5) if config.mirror else ()
    scale = rng.uniform(1 - config.intensity_scale, 1 + config.intensity_scale)
    offset = rng.uniform(-config.intensity_shift, config.intensity_shift)
    return ViewGeometry(shift, mirrored_axes, scale, offset)


def window(array: np.ndarray, config: PreprocessingConfig, geometry: ViewGeometry) -> np.ndarray:
    """The view's patch of a (C, *spatial) image or label array, without intensity changes."""
    patch = pad_or_crop(array, config.patch_size, geometry.shift)
    return np.flip(patch, axis=geometry.mirrored_axes) if geometry.mirrored_axes else patch


def make_view(volume: np.ndarray, config: PreprocessingConfig, view: int, seed_of_volume: int) -> np.ndarray:
    """The encoder input of one view: its window, intensities rescaled for augmented views."""
    geometry = view_geometry(config, view, seed_of_volume)
    if view == 0:
        return window(volume, config, geometry)
    return np.ascontiguousarray(window(volume, config, geometry) * geometry.scale + geometry.offset,
                                dtype=np.float32)


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

    def preprocess(self, volume_path: str, label_path: Optional[str] = None, label_values: Sequence[int] = ()
                   ) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """(C, *spatial) float32, normalised and resampled, before pad/crop; and the label map (1, *spatial)
        in the same voxel grid when `label_path` is given (nnU-Net's segmentation resampling; nnU-Net also
        records where `label_values` lie, which it needs a label table for)."""
        preprocessor = self.configuration_manager.preprocessor_class(verbose=False)
        labels = {"background": 0, **{f"label_{value}": value for value in label_values}}
        data, seg, _ = preprocessor.run_case([volume_path], label_path, self.plans_manager,
                                             self.configuration_manager, dataset_json={"labels": labels})
        return data.astype(np.float32, copy=False), seg

    def region_view(self, volume_path: str, masks: Sequence[tuple[str, int]], view: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        """One view of the volume (C, *patch) and of its regions, (R, *patch) bool, one per (label map, label)."""
        seed, data, label_views = volume_seed(volume_path), None, {}
        for mask_path in dict.fromkeys(path for path, _ in masks):  # one nnU-Net pass per label map
            values = sorted({label for path, label in masks if path == mask_path})
            volume, seg = self.preprocess(volume_path, mask_path, values)
            data = volume if data is None else data
            label_views[mask_path] = window(seg, self.config, view_geometry(self.config, view, seed))[0]
        regions = [label_views[mask_path] == label for mask_path, label in masks]
        return make_view(data, self.config, view, seed), np.stack(regions)

    def views(self, volume_path: str, views: Sequence[int]) -> np.ndarray:
        """(len(views), C, *patch_size): the requested views of one volume, preprocessed once."""
        volume, _ = self.preprocess(volume_path)
        return np.stack([make_view(volume, self.config, view, volume_seed(volume_path)) for view in views])
