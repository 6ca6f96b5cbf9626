"""Validation of the memory estimator: estimated (fake tensors) vs real peak live tensor bytes on CPU.

    PYTHONPATH=. python benchmarks/bench_memory_estimate.py

Rows: four (STU-Net width, patch size) pairs for the contrastive step (trained encoder, MiniLM with its last layer
trained, batch 4, 2 captions; plain and micro-batch 2 + checkpointing), the OpenVocab fine-tuning step
(batch 2) and one mirrored prediction tile (7 prompts). Prints a markdown table for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import time

import torch

from nnunetv2_openvocab.memory_estimate.contrastive_step import ContrastiveStep, contrastive_step
from nnunetv2_openvocab.memory_estimate.live_bytes import fake_peak, real_peak
from nnunetv2_openvocab.memory_estimate.segmentation_steps import SegmentationNetwork, prediction_tile, training_step
from nnunetv2_openvocab.pretraining.config import TrainConfig
from nnunetv2_openvocab.pretraining.memory_options import MemoryOptions

MIB = 1024 ** 2
SIZES = ((4, 32), (8, 48), (16, 64), (16, 32))  # (STU-Net stage-0 width, patch edge)


def _arch(width: int) -> dict:
    return {"depth": [1, 1, 1, 1], "dims": [width, 2 * width, 4 * width, 8 * width],
            "pool_op_kernel_sizes": [[2, 2, 2]] * 3}


def _cases():
    config = TrainConfig(text_encoder="minilm", text_trainable_layers=1, batch_size=4, num_captions=2,
                         unlock_image_encoder=True)
    for width, patch in SIZES:
        for label, memory in (("", MemoryOptions()),
                              ("micro-batch 2 + checkpointing", MemoryOptions(micro_batch=2,
                                                                              checkpoint_activations=True))):
            step = ContrastiveStep(config, _arch(width), (patch,) * 3, report_words=40, caption_words=8,
                                   memory=memory, device_type="cpu")
            yield f"contrastive {label}".strip(), width, patch, lambda step=step: contrastive_step(step)
        network = SegmentationNetwork(_arch(width), 5, 32)
        yield "fine-tuning", width, patch, lambda n=network, p=patch: training_step(n, (p,) * 3, 2, False)
        yield "prediction tile", width, patch, lambda n=network, p=patch: prediction_tile(n, (p,) * 3, 7,
                                                                                        mixed_precision=False)

def main() -> None:
    torch.set_num_threads(1)
    print("| step | width | patch | real peak MiB | estimate MiB | error | estimate took |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, width, patch, make in _cases():
        start = time.perf_counter()
        estimate = fake_peak(make())
        seconds = time.perf_counter() - start
        real = real_peak(make())
        print(f"| {name} | {width} | {patch}^3 | {real / MIB:.1f} | {estimate / MIB:.1f} | "
              f"{(estimate - real) / real:+.3%} | {seconds:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
