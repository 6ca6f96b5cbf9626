"""Gradient caching (Gao et al. 2021): a batch split into micro-batches that still contrasts as a whole.

Plain gradient accumulation would compute the loss per micro-batch and shrink the pool of negatives.
Here the step runs in three passes over the micro-batches of a process's batch:

1. embed every micro-batch without autograd (activations are freed at once) and remember its RNG state;
2. compute the loss of the whole batch on those embeddings, made leaves, and back-propagate it: this
   gives the logit scale its gradient and every embedding dL/d(embedding);
3. recompute each micro-batch with autograd, from the same RNG state (identical dropout), and
   back-propagate its cached dL/d(embedding) into the towers; gradients accumulate over micro-batches.

By the chain rule the parameters receive exactly the full batch's gradients. Under DDP only the last
micro-batch's backward all-reduces (`no_sync` before it), and the cross-process gathering of loss.py is
unchanged, because pass 2 is the ordinary loss on the process's full local batch.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import replace
from functools import partial
from typing import Callable, Optional, Sequence, TypeVar

import torch
from torch import nn

from nnunetv2_openvocab.pretraining.data import ContrastiveBatch
from nnunetv2_openvocab.pretraining.image_encoder import encode_locked
from nnunetv2_openvocab.pretraining.loss import ClipLoss
from nnunetv2_openvocab.pretraining.memory_options import MemoryOptions
from nnunetv2_openvocab.pretraining.model import embed
from nnunetv2_openvocab.pretraining.rng_states import device_rng_state, restore_device_rng_state

Features = tuple[Optional[torch.Tensor], ...]  # image, report, caption (K, b, D), region, region caption
# the dimension along which each feature stacks the micro-batches (captions are (K, b, D))
BATCH_DIMS = (0, 0, 1, 0, 0)
Result = TypeVar("Result")
# runs one micro-batch's pass: (pass name "embed" or "recompute", micro-batch size, the pass) -> its result
MicroStepRunner = Callable[[str, int, Callable[[], Result]], Result]


def run_every_micro_step(kind: str, size: int, step: Callable[[], Result]) -> Result:
    """Training runs every pass; the memory estimator passes a runner that skips repeated ones."""
    return step()


def split_batch(batch: ContrastiveBatch, micro_batch: int) -> list[ContrastiveBatch]:
    """Consecutive chunks of `micro_batch` samples (the last one may be smaller)."""
    chunks = []
    for start in range(0, len(batch.reports), micro_batch):
        part = slice(start, start + micro_batch)
        chunks.append(ContrastiveBatch(batch.images[part], batch.reports[part],
                                       [slot[part] for slot in batch.captions] if batch.captions else None,
                                       batch.regions[part] if batch.regions is not None else None))
    return chunks


def _concatenate(chunks: Sequence[Features]) -> Features:
    joined = []
    for index, dim in enumerate(BATCH_DIMS):
        parts = [chunk[index] for chunk in chunks if chunk[index] is not None]
        joined.append(torch.cat(parts, dim=dim) if parts else None)
    return tuple(joined)


def _split_like(gradients: Features, chunks: Sequence[Features]) -> list[Features]:
    """Cut the whole batch's feature gradients back into the micro-batches' shares."""
    shares = [[] for _ in chunks]
    for index, dim in enumerate(BATCH_DIMS):
        sizes = [0 if chunk[index] is None else chunk[index].shape[dim] for chunk in chunks]
        pieces = gradients[index].split(sizes, dim=dim) if gradients[index] is not None else [None] * len(chunks)
        for share, piece, size in zip(shares, pieces, sizes):
            share.append(piece if size else None)
    return [tuple(share) for share in shares]


def _trainable_features(model: nn.Module) -> tuple[bool, ...]:
    """Which of the five features carry gradient: the image-side ones only while the image encoder trains."""
    encoder = model.image_encoder
    image_trains = encoder is not None and any(parameter.requires_grad for parameter in encoder.parameters())
    return image_trains, True, True, image_trains, True


def _loss_and_feature_gradients(loss_fn: ClipLoss, features: Features, trainable: Sequence[bool]
                                ) -> tuple[dict[str, float], Features]:
    leaves = tuple(None if feature is None else feature.requires_grad_(wanted)
                   for feature, wanted in zip(features, trainable))
    losses = loss_fn(*leaves)
    total = torch.stack(list(losses.values())).sum()
    total.backward()  # the logit scale's gradient is final here
    logged = {"loss": total.item(), **{name: value.item() for name, value in losses.items()}}
    return logged, tuple(None if leaf is None else leaf.grad for leaf in leaves)


def cached_forward_backward(model: nn.Module, loss_fn: ClipLoss, batch: ContrastiveBatch, device: torch.device,
                            options: MemoryOptions, locked_image_encoder: Optional[nn.Module] = None,
                            run_micro_step: MicroStepRunner = run_every_micro_step) -> dict[str, float]:
    """forward_backward of model.py in micro-batches of options.micro_batch samples, with the same gradients
    and returned losses. `model` may be DDP-wrapped; `locked_image_encoder` embeds volumes first."""
    if locked_image_encoder is not None:
        batch = replace(batch, images=encode_locked(locked_image_encoder, batch.images, device))
    chunks = split_batch(batch, options.micro_batch or len(batch.reports))
    plain_model = getattr(model, "module", model)  # pass 1 bypasses DDP: nothing is reduced without autograd
    rng_states, features = [], []
    for chunk in chunks:
        rng_states.append(device_rng_state(device))
        features.append(run_micro_step("embed", len(chunk.reports),
                                       partial(_embed_without_autograd, plain_model, chunk, device, options)))
    losses, gradients = _loss_and_feature_gradients(loss_fn, _concatenate(features),
                                                    _trainable_features(plain_model))
    for index, (chunk, chunk_gradients) in enumerate(zip(chunks, _split_like(gradients, features))):
        last = index == len(chunks) - 1
        with _rng_replayed(rng_states[index], device), (nullcontext() if last else _no_sync(model)):
            run_micro_step("recompute", len(chunk.reports),
                           partial(_recompute_and_backward, model, chunk, chunk_gradients, device, options))
    return losses


def _embed_without_autograd(model: nn.Module, chunk: ContrastiveBatch, device: torch.device,
                            options: MemoryOptions) -> Features:
    with torch.no_grad():
        return embed(model, chunk, device, options)


def _recompute_and_backward(model: nn.Module, chunk: ContrastiveBatch, gradients: Features, device: torch.device,
                            options: MemoryOptions) -> None:
    pairs = [(output, gradient) for output, gradient in zip(embed(model, chunk, device, options), gradients)
             if output is not None and output.requires_grad and gradient is not None]
    torch.autograd.backward([output for output, _ in pairs], [gradient for _, gradient in pairs])


def _no_sync(model: nn.Module):
    """DDP's no_sync: gradients accumulate locally until the last micro-batch's backward reduces them all."""
    return model.no_sync() if hasattr(model, "no_sync") else nullcontext()


@contextmanager
def _rng_replayed(state: dict[str, torch.Tensor], device: torch.device):
    """Run the block from a remembered RNG state (pass 3 draws pass 1's dropout masks), then continue
    from where the RNG stood before it."""
    after_pass_one = device_rng_state(device)
    restore_device_rng_state(state, device)
    try:
        yield
    finally:
        restore_device_rng_state(after_pass_one, device)
