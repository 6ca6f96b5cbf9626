"""Peak device memory of one contrastive pretraining step (nnUNetv2_openvocab_pretrain train --estimate-memory).

The step is the real one of train.py: ContrastiveModel (STU-Net encoder of the plans + text tower), the loss
of the config, AdamW of build_optimizer, forward_backward or gradient caching, optimizer.step. Only the
inputs are synthetic: random volumes of the patch size, reports of `report_words` words and captions of
`caption_words` words (one token per word), `regions_per_sample` region masks with row 4's alignment.
bf16 autocast is estimated with CPU autocast, which casts the same convolutions and matmuls.
With --micro-batch, repeated micro-batch passes are traced until they repeat (repeated_micro_steps.py).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

import torch

from nnunetv2_openvocab.memory_estimate.repeated_micro_steps import RepeatedMicroSteps
from nnunetv2_openvocab.memory_estimate.text_standin import StandInSentenceModel, text_encoder_config
from nnunetv2_openvocab.network.stunet import STUNet
from nnunetv2_openvocab.pretraining.config import TrainConfig
from nnunetv2_openvocab.pretraining.data import ContrastiveBatch, RegionSample
from nnunetv2_openvocab.pretraining.gradient_cache import cached_forward_backward, run_every_micro_step
from nnunetv2_openvocab.pretraining.image_encoder import PooledImageEncoder, encode_locked, lock
from nnunetv2_openvocab.pretraining.loss import build_loss
from nnunetv2_openvocab.pretraining.memory_options import MemoryOptions
from nnunetv2_openvocab.pretraining.model import ContrastiveModel, forward_backward
from nnunetv2_openvocab.pretraining.optimization import build_optimizer
from nnunetv2_openvocab.pretraining.text_tower import ContrastiveTextTower, set_trainable_layers
from nnunetv2_openvocab.text.projection import TextProjection

CPU = torch.device("cpu")


@dataclass(frozen=True)
class ContrastiveStep:
    """What sets the memory of one step. arch_kwargs None: cached embeddings of size embedding_dim."""

    config: TrainConfig
    arch_kwargs: Optional[dict]
    patch_size: tuple[int, ...] = (220, 220, 220)
    input_channels: int = 1
    embedding_dim: int = 512
    report_words: int = 512
    caption_words: int = 24
    regions_per_sample: int = 37
    memory: MemoryOptions = MemoryOptions()
    device_type: str = "cuda"  # where the step will run: decides bf16's default
    trace_every_micro_batch: bool = False  # True: no shortcut for repeated micro-batches (slow; the reference)


def _image_encoder(step: ContrastiveStep) -> Optional[PooledImageEncoder]:
    if step.arch_kwargs is None:
        return None
    network = STUNet(step.input_channels, 1, deep_supervision=False, **step.arch_kwargs)
    del network.upsample_layers, network.conv_blocks_localization, network.seg_outputs  # pretraining keeps the encoder
    return PooledImageEncoder(network, step.memory.checkpoint_activations)


def _text_tower(step: ContrastiveStep, image_embedding_dim: int, text_model_config) -> ContrastiveTextTower:
    config, max_seq_length = text_model_config
    sentence_model = StandInSentenceModel(config, step.config.max_text_tokens or max_seq_length)
    set_trainable_layers(sentence_model, step.config.text_trainable_layers)
    projection = TextProjection(config.hidden_size, step.config.projection_hidden_dim or image_embedding_dim,
                                image_embedding_dim)
    return ContrastiveTextTower(sentence_model, projection)


def _batch(step: ContrastiveStep, image_input: tuple[int, ...]) -> ContrastiveBatch:
    b = step.config.batch_size
    reports = [" ".join(["word"] * step.report_words)] * b
    caption = " ".join(["word"] * step.caption_words)
    captions = [[caption] * b for _ in range(step.config.captions_per_sample)] or None
    regions = None
    if step.config.region_alignment:
        masks = torch.ones(step.regions_per_sample, *step.patch_size, dtype=torch.bool)
        regions = [RegionSample(masks, [caption] * step.regions_per_sample)] * b
    return ContrastiveBatch(torch.randn(b, *image_input), reports, captions, regions)


def contrastive_step(step: ContrastiveStep) -> Callable[[], None]:
    """The block whose peak live tensor bytes is the step's device memory (model, optimiser, one step)."""
    text_model_config = text_encoder_config(step.config.text_encoder)  # read before any fake mode starts
    memory = replace(step.memory, bf16=step.memory.uses_bf16(torch.device(step.device_type)))

    def block() -> None:
        encoder = _image_encoder(step)
        embedding_dim = encoder.embedding_dim if encoder is not None else step.embedding_dim
        trained = encoder if step.config.unlock_image_encoder else None
        locked = lock(encoder) if encoder is not None and trained is None else None
        model = ContrastiveModel(_text_tower(step, embedding_dim, text_model_config), trained)
        loss_fn = build_loss(step.config)
        optimizer = build_optimizer(step.config, model, loss_fn)
        image_input = (step.input_channels, *step.patch_size) if encoder is not None else (embedding_dim,)
        batch = _batch(step, image_input)
        if locked is not None:  # the on-the-fly route encodes with the locked encoder first
            batch = replace(batch, images=encode_locked(locked, batch.images, CPU))
        if memory.micro_batch is not None and memory.micro_batch < step.config.batch_size:
            runner = run_every_micro_step if step.trace_every_micro_batch else RepeatedMicroSteps()
            cached_forward_backward(model, loss_fn, batch, CPU, memory, run_micro_step=runner)
        else:
            forward_backward(model, loss_fn, batch, CPU, options=memory)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return block
