"""Shared helpers for the pretraining tests: a tiny nnU-Net STUNet model on real CT, manifests, report data.

The model folder mimics what nnU-Net writes (plans.json beside fold_0/checkpoint_final.pth with
`network_weights`); its plans are nnU-Net v2 plans for a 6-stage STUNet of width 8 with CTNormalization,
whose foreground intensity properties are measured on the real bundled CT (TotalSegmentator example,
Apache-2.0). The weights are a random He initialisation: the tests check plumbing and equivalences,
not what a segmentation-trained encoder has learned. This module holds no tests itself.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunetv2_openvocab.example_dataset import EXAMPLE_CT
from nnunetv2_openvocab.network.stunet import STUNet
from nnunetv2_openvocab.pretraining.feature_cache import FeatureCache
from nnunetv2_openvocab.pretraining.image_encoder import ImageEncoderInfo, PooledImageEncoder
from nnunetv2_openvocab.pretraining.manifest import ManifestEntry
from nnunetv2_openvocab.text.encoder import module_fingerprint

SHARED_DATA = Path(os.environ.get("OPENVOCAB_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
TINY_DIMS = [8, 16, 32, 64, 64, 64]
TINY_STRIDES = [[1, 1, 1]] + [[2, 2, 2]] * 5


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors, shared CPU: intra-op threads only add contention (10x slower forwards under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def shared_file(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available (set OPENVOCAB_SHARED_DATA)")
    return path


def ct_intensity_properties(ct_path: Path) -> dict:
    """nnU-Net's foreground_intensity_properties_per_channel entry, with voxels above -500 HU as foreground."""
    values = sitk.GetArrayFromImage(sitk.ReadImage(str(ct_path))).astype(np.float64)
    foreground = values[values > -500]
    return {"max": float(foreground.max()), "mean": float(foreground.mean()), "median": float(np.median(foreground)),
            "min": float(foreground.min()), "percentile_00_5": float(np.percentile(foreground, 0.5)),
            "percentile_99_5": float(np.percentile(foreground, 99.5)), "std": float(foreground.std())}


def tiny_stunet_plans(ct_path: Path = EXAMPLE_CT, patch_size: Sequence[int] = (48, 48, 48)) -> dict:
    resampling = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
    return {
        "dataset_name": "Dataset990_OpenVocabExample", "plans_name": "nnUNetPlans_STUNetS_width8",
        "original_median_spacing_after_transp": [3.0, 3.0, 3.0],
        "original_median_shape_after_transp": [112, 101, 122],
        "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "experiment_planner_used": "STUNetPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": ct_intensity_properties(ct_path)},
        "configurations": {"3d_fullres": {
            "data_identifier": "nnUNetPlans_STUNetS_width8_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2, "patch_size": list(patch_size), "median_image_size_in_voxels": [112, 101, 122],
            "spacing": [3.0, 3.0, 3.0], "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": resampling,
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_seg_kwargs": {**resampling, "is_seg": True, "order": 1},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": resampling, "batch_dice": False,
            "architecture": {"network_class_name": "nnunetv2_openvocab.network.stunet.STUNet",
                             "arch_kwargs": {"depth": [1] * 6, "dims": TINY_DIMS, "strides": TINY_STRIDES,
                                             "conv_kernel_sizes": [[3, 3, 3]] * 6},
                             "_kw_requires_import": []},
        }},
    }


def write_tiny_nnunet_model(folder: Path, seed: int = 0) -> Path:
    """An nnU-Net model folder (plans.json + fold_0/checkpoint_final.pth); returns the checkpoint path."""
    plans = tiny_stunet_plans()
    torch.manual_seed(seed)
    network = STUNet(1, 3, depth=[1] * 6, dims=TINY_DIMS, strides=TINY_STRIDES)
    network.apply(network.initialize)
    (folder / "fold_0").mkdir(parents=True, exist_ok=True)
    (folder / "plans.json").write_text(json.dumps(plans, indent=2))
    checkpoint = folder / "fold_0" / "checkpoint_final.pth"
    torch.save({"network_weights": network.state_dict(), "trainer_name": "nnUNetTrainer", "current_epoch": 1},
               checkpoint)
    return checkpoint


def write_ct_slabs(folder: Path, count: int, slices: int = 60) -> list[Path]:
    """`count` different real-CT volumes: overlapping axial slabs of the bundled example CT."""
    folder.mkdir(parents=True, exist_ok=True)
    ct = sitk.ReadImage(str(EXAMPLE_CT))
    depth = ct.GetSize()[2]
    paths = []
    for index in range(count):
        first = index * (depth - slices) // max(count - 1, 1)
        path = folder / f"ct_slab_{index}.nii.gz"
        sitk.WriteImage(ct[:, :, first:first + slices], str(path))  # sitk indexes (x, y, z)
        paths.append(path)
    return paths


def write_manifest(path: Path, records: Sequence[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def synthetic_caption_records(count: int, volume_prefix: str = "volume") -> list[dict]:
    """Small report/caption records for plumbing tests (text content is irrelevant there)."""
    organs = ["liver", "spleen", "left kidney", "right kidney", "aorta", "pancreas", "lung", "heart"]
    findings = ["normal", "enlarged", "with a small cyst", "calcified", "with a nodule", "atrophic"]
    records = []
    for i in range(count):
        organ, finding = organs[i % len(organs)], findings[(i * 5) % len(findings)]
        captions = [f"The {organ} is {finding}.", f"No abnormality of the {organs[(i + 3) % len(organs)]}.",
                    f"Case {i} shows {finding} findings."][: 1 + i % 3]
        records.append({"volume": f"{volume_prefix}_{i:03d}.nii.gz",
                        "report": f"CT report {i}: the {organ} is {finding}. Other organs are unremarkable.",
                        "captions": captions})
    return records


def write_feature_cache(folder: Path, entries: Sequence[ManifestEntry], features: torch.Tensor) -> Path:
    """A feature cache holding the given (N, V, D) features for `entries`, as if cache-features had run.

    The encoder record describes a random tiny STUNet whose bottleneck width is D, so that runs trained on
    these features can be exported; the features themselves are not that encoder's output.
    """
    dims = [8, 8, 8, 8, 8, features.shape[-1]]
    torch.manual_seed(0)
    encoder = PooledImageEncoder(STUNet(1, 1, depth=[1] * 6, dims=dims, strides=TINY_STRIDES))
    arch_kwargs = {"depth": [1] * 6, "dims": dims, "strides": TINY_STRIDES, "conv_kernel_sizes": [[3, 3, 3]] * 6}
    info = ImageEncoderInfo("nnunetv2_openvocab.network.stunet.STUNet", arch_kwargs, 1, features.shape[-1],
                            module_fingerprint(encoder), "synthetic", "synthetic", "3d_fullres")
    cache = FeatureCache(folder)
    key = cache.prepare(info, {"synthetic_features": True}, features.shape[1], encoder.state_dict())
    for entry, embeddings in zip(entries, features):
        cache.write_entry(entry.volume, key, embeddings)
    return folder
