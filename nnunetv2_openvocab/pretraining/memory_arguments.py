"""Command-line flags of MemoryOptions, shared by the pretraining entry point and its memory estimate."""
from __future__ import annotations

import argparse

from nnunetv2_openvocab.pretraining.memory_options import MemoryOptions


def add_memory_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("device memory (same gradients; see README 'Memory')")
    group.add_argument("--micro-batch", type=int, metavar="N",
                       help="forward/backward N samples at a time; the loss still contrasts the whole batch "
                            "(gradient caching)")
    group.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                       help="bfloat16 autocast of the towers (default: on for CUDA, off on CPU)")
    group.add_argument("--checkpoint-activations", action="store_true",
                       help="recompute the trained STU-Net encoder stages in the backward pass instead of storing "
                            "their activations")
    group.add_argument("--estimate-memory", action="store_true",
                       help="print the peak device memory of one training step with these settings (fake tensors, "
                            "nothing allocated) and exit")


def memory_options(args: argparse.Namespace) -> MemoryOptions:
    return MemoryOptions(args.micro_batch, args.bf16, args.checkpoint_activations)
