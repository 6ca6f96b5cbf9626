"""Peak device memory of every stage of the paper's pipeline (Table VIII rows), at --preset paper.

Assumptions beyond the preset: STU-Net L fine-tunes and segments at 128^3 with batch 2 (STU-Net's and
nnU-Net's setting at 1.5 mm), TotalSegmentator v1's 104 labels, BioLORD-2023 (mpnet-base) trained in full,
reports of 512 tokens (the encoder's limit) and captions of 24, 37 regions per volume (row 4, RadGenome),
prediction of 117 prompts with mirroring; a 512x512x300 CT at 0.78 x 0.78 x 1.5 mm resamples to
266 x 266 x 300 voxels at 1.5 mm, whose blended sums live in host memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from nnunetv2_openvocab.memory_estimate.contrastive_step import ContrastiveStep, contrastive_step
from nnunetv2_openvocab.memory_estimate.live_bytes import GIB
from nnunetv2_openvocab.memory_estimate.segmentation_steps import (SegmentationNetwork, blend_buffer_bytes,
                                                                    cache_features_volume, prediction_tile,
                                                                    training_step)
from nnunetv2_openvocab.network.stunet import stunet_arch_kwargs
from nnunetv2_openvocab.pretraining.config import TrainConfig
from nnunetv2_openvocab.pretraining.memory_options import MemoryOptions

STUNET_L = stunet_arch_kwargs("L")
PRETRAIN_PATCH = (220, 220, 220)
SEGMENTATION_PATCH = (128, 128, 128)
SEGMENTATION_BATCH = 2
TOTALSEG_V1_LABELS = 104
PROMPTS = 117
RESAMPLED_CT = (300, 266, 266)
GPU_SIZES_GB = (24, 40, 80)


@dataclass(frozen=True)
class Estimate:
    rows: str
    stage: str
    flags: str
    block: Callable[[], None]


def _contrastive(loss: str, regions: bool, memory: MemoryOptions) -> Callable[[], None]:
    config = TrainConfig(loss=loss, batch_size=32, unlock_image_encoder=True, region_alignment=regions,
                         report_section="findings")
    return contrastive_step(ContrastiveStep(config, STUNET_L, PRETRAIN_PATCH, memory=memory))


CONTRASTIVE_OPTIONS = {
    "--no-bf16": MemoryOptions(bf16=False),
    "(bf16 default)": MemoryOptions(),
    "--checkpoint-activations": MemoryOptions(checkpoint_activations=True),
    "--checkpoint-activations --micro-batch 4": MemoryOptions(micro_batch=4, checkpoint_activations=True),
    "--checkpoint-activations --micro-batch 1": MemoryOptions(micro_batch=1, checkpoint_activations=True),
}


def paper_estimates() -> list[Estimate]:
    finetune = SegmentationNetwork(STUNET_L, TOTALSEG_V1_LABELS)
    estimates = [
        Estimate("all", "segmentation pretraining (nnUNetTrainer, STU-Net L)", "",
                 training_step(SegmentationNetwork(STUNET_L, TOTALSEG_V1_LABELS, None), SEGMENTATION_PATCH,
                               SEGMENTATION_BATCH)),
        Estimate("⑤ ⑥", "cache-features (220^3, locked encoder)", "", cache_features_volume(STUNET_L, PRETRAIN_PATCH)),
        Estimate("⑤ ⑥", "contrastive pretraining, MGCL on cached features", "",
                 contrastive_step(ContrastiveStep(TrainConfig(batch_size=32, report_section="findings"), None,
                                                  embedding_dim=STUNET_L["dims"][-1]))),
    ]
    for rows, loss, regions in (("②", "clip", False), ("③", "mgcl", False), ("④", "mgcl", True)):
        for flags, memory in CONTRASTIVE_OPTIONS.items():
            estimates.append(Estimate(rows, "contrastive pretraining, image encoder trained", flags,
                                      _contrastive(loss, regions, memory)))
    estimates += [
        Estimate("① ② ③ ④", "fine-tuning, encoder trained, MLP", "", training_step(finetune, SEGMENTATION_PATCH,
                                                                                   SEGMENTATION_BATCH)),
        Estimate("⑤", "fine-tuning, encoder locked, cross-attention", "",
                 training_step(SegmentationNetwork(STUNET_L, TOTALSEG_V1_LABELS, connector="cross_attention",
                                                   frozen_encoder=True), SEGMENTATION_PATCH, SEGMENTATION_BATCH)),
        Estimate("⑥", "fine-tuning, encoder locked, MLP", "",
                 training_step(SegmentationNetwork(STUNET_L, TOTALSEG_V1_LABELS, frozen_encoder=True),
                               SEGMENTATION_PATCH, SEGMENTATION_BATCH)),
        Estimate("all", f"inference, {PROMPTS} prompts, one 128^3 tile (device)", "",
                 prediction_tile(finetune, SEGMENTATION_PATCH, PROMPTS)),
    ]
    return estimates


def inference_host_gib() -> float:
    return blend_buffer_bytes(SegmentationNetwork(STUNET_L, TOTALSEG_V1_LABELS), RESAMPLED_CT, PROMPTS) / GIB


def fits(peak_gib: float) -> str:
    """The GPU sizes (GB = 10^9 bytes) the peak fits, leaving 1 GB for the CUDA context and workspaces."""
    sizes = [f"{size}" for size in GPU_SIZES_GB if peak_gib * GIB + 1e9 <= size * 1e9]
    return "/".join(sizes) if sizes else "none"
