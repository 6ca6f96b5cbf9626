#!/usr/bin/env bash
# One-GPU readiness check (about 3-6 minutes, capped at 8): smoke-scale contrastive pretraining, fine-tuning and
# prediction on CUDA, each stage's peak memory (torch.cuda.max_memory_allocated) against --estimate-memory's
# figure. Run on a machine with one GPU: bash benchmarks/gpu_check.sh [WORK_FOLDER]. Never used by the tests.
set -euo pipefail
work="$(realpath -m "${1:-openvocab_gpu_check}")"
cd "$(dirname "$0")/.."
# nnU-Net reads its folders at import time: the same ones the demo uses inside the work folder
export nnUNet_raw="$work/nnUNet_raw" nnUNet_preprocessed="$work/nnUNet_preprocessed" nnUNet_results="$work/nnUNet_results"
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0}"
timeout 480 python benchmarks/gpu_check.py --out "$work"
