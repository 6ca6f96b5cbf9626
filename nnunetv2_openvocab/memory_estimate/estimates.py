"""The --estimate-memory answers of the pretraining, training and prediction commands: one line each.

Each builds the step's block from the real configuration (plans, TrainConfig, preprocessing, trained
model) and measures it on fake tensors (live_bytes.fake_peak); nothing of the size is allocated.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_openvocab.inference.model_loading import DEFAULT_CHECKPOINT, load_trained_model
from nnunetv2_openvocab.memory_estimate.contrastive_step import ContrastiveStep, contrastive_step
from nnunetv2_openvocab.memory_estimate.live_bytes import GIB, fake_peak
from nnunetv2_openvocab.memory_estimate.segmentation_steps import (SegmentationNetwork, prediction_tile,
                                                                    training_step)
from nnunetv2_openvocab.model_spec import OpenVocabSpec
from nnunetv2_openvocab.pretraining.config import PreprocessingConfig, TrainConfig
from nnunetv2_openvocab.pretraining.feature_cache import CACHE_MANIFEST
from nnunetv2_openvocab.pretraining.image_encoder import resolve_nnunet_model
from nnunetv2_openvocab.pretraining.memory_options import MemoryOptions

CAVEAT = "live tensor bytes; add ~1 GB for the CUDA context and convolution workspaces"


@dataclass(frozen=True)
class MemoryEstimate:
    peak_bytes: int
    what: str  # the step, e.g. "training step, batch 2 of [128, 128, 128]"
    note: str = ""

    def __str__(self) -> str:
        return f"{self.what}: peak {self.peak_bytes / GIB:.2f} GiB ({CAVEAT}){self.note}"


def _architecture(plans: Path, configuration: str) -> tuple[dict, int, tuple[int, ...], int]:
    """(arch_kwargs, input channels, patch size, batch size) of a plans configuration."""
    manager = PlansManager(str(plans)).get_configuration(configuration)
    return (dict(manager.network_arch_init_kwargs), len(manager.normalization_schemes), tuple(manager.patch_size),
            manager.batch_size)


def estimate_pretraining(config: Optional[TrainConfig], cache=None, encoder_checkpoint=None, plans=None,
                         configuration: str = "3d_fullres", preprocessing: Optional[PreprocessingConfig] = None,
                         device: str = "cpu", memory: MemoryOptions = MemoryOptions()) -> MemoryEstimate:
    """Peak device memory of one step of `nnUNetv2_openvocab_pretrain train` with these arguments, per process."""
    config = config or TrainConfig()
    if cache is not None:
        manifest = json.loads((Path(cache) / CACHE_MANIFEST).read_text(encoding="utf-8"))
        step = ContrastiveStep(config, None, embedding_dim=int(manifest["encoder"]["embedding_dim"]), memory=memory,
                               device_type=torch.device(device).type)
    else:
        if encoder_checkpoint is not None:
            plans = resolve_nnunet_model(encoder_checkpoint, plans)[1]
        if plans is None or not Path(plans).is_file():
            raise ValueError(f"--estimate-memory needs the encoder's plans: --plans {plans} is no file; pass the "
                             f"plans.json, --encoder-checkpoint or --cache.")
        arch_kwargs, channels, _, _ = _architecture(Path(plans), configuration)
        step = ContrastiveStep(config, arch_kwargs, (preprocessing or PreprocessingConfig()).patch_size,
                               input_channels=channels, memory=memory, device_type=torch.device(device).type)
    return MemoryEstimate(fake_peak(contrastive_step(step)),
                          f"contrastive pretraining, one step of batch {config.batch_size} per process")


def estimate_training(plans: str | Path, configuration: str, num_labels: int, spec: Optional[OpenVocabSpec],
                      frozen_encoder: bool = False, connector: Optional[str] = None,
                      mixed_precision: bool = True) -> MemoryEstimate:
    """Peak device memory of one nnU-Net training step of a trainer configuration (spec None: stock STUNet)."""
    arch_kwargs, channels, patch, batch = _architecture(Path(plans), configuration)
    network = SegmentationNetwork(arch_kwargs, num_labels, spec.embedding_dim if spec else None,
                                  connector or (spec.connector if spec else "mlp"), frozen_encoder, channels)
    return MemoryEstimate(fake_peak(training_step(network, patch, batch, mixed_precision)),
                          f"training step, batch {batch} of {list(patch)}")


def estimate_prediction(model_folder, folds=None, checkpoint_name: str = DEFAULT_CHECKPOINT,
                        prompts: Optional[Sequence[str]] = None, use_mirroring: bool = True,
                        mixed_precision: bool = True) -> MemoryEstimate:
    """Peak device memory of one sliding-window tile of nnUNetv2_openvocab_predict with the model of
    `model_folder` (default prompts: the model's training prompts)."""
    model = load_trained_model(model_folder, folds, checkpoint_name)
    spec = model.spec
    num_prompts = len(prompts) if prompts else len(spec.label_names)
    mirror_axes = model.mirror_axes if use_mirroring else None
    manager = model.configuration_manager
    network = SegmentationNetwork(dict(manager.network_arch_init_kwargs), len(spec.label_names), spec.embedding_dim,
                                  spec.connector, input_channels=model.num_input_channels)
    return MemoryEstimate(fake_peak(prediction_tile(network, manager.patch_size, num_prompts, mirror_axes,
                                                    mixed_precision)),
                          f"prediction, one {list(manager.patch_size)} tile with {num_prompts} prompts on the device",
                          "; the blended sums stay in host memory")
