"""Throughput of background preprocessing and export (nnU-Net's -npp/-nps) against sequential prediction (issue 15).

A folder of 4 cases (the bundled CT resampled to ``--spacing`` mm, under 4 names) is predicted with ``--prompts``
TotalSegmentator prompts by one predictor (the demo model, as in bench_inference.py), once with everything in the
main process and once with ``--npp`` preprocessing and ``--nps`` export processes, alternating ``--repeats`` times.
Prints cases per minute of both and their ratio (> 1: the workers help). Worker start-up (spawned processes
import torch) is part of the measured time, as it is for a user.

Usage: python benchmarks/bench_scale_out.py [--model-folder DIR] [--spacing 1.5] [--prompts 8] [--npp 3 --nps 3]
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk
import torch

from bench_inference import DEMO_MODEL, benchmark_prompts, checkpoint_name, make_predictor, resampled_ct
from nnunetv2_openvocab.inference.background_workers import Workers

NUM_CASES = 4


def case_folder(folder: Path, spacing: float) -> Path:
    images = folder / "images"
    images.mkdir()
    ct = resampled_ct(folder, spacing)
    for index in range(NUM_CASES):
        sitk.WriteImage(sitk.ReadImage(str(ct)), str(images / f"case_{index}_0000.nii.gz"))
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-folder", type=Path, default=DEMO_MODEL)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--spacing", type=float, default=1.5)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--npp", type=int, default=3)
    parser.add_argument("--nps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    if not (args.model_folder / "plans.json").is_file():
        sys.exit(f"No model in {args.model_folder}: run nnUNetv2_openvocab_demo first, or pass --model-folder.")
    checkpoint = checkpoint_name(args.model_folder, args.checkpoint)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads; model {args.model_folder} ({checkpoint})")
    predictor = make_predictor(args.model_folder, checkpoint)
    prompts = benchmark_prompts(args.prompts)
    predictor.embed(prompts)
    settings = {"sequential": Workers(0, 0), f"-npp {args.npp} -nps {args.nps}": Workers(args.npp, args.nps)}
    times = {name: [] for name in settings}
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        images = case_folder(folder, args.spacing)
        for repeat in range(args.repeats):
            for name, workers in settings.items():
                start = time.perf_counter()
                predictor.predict_from_files(images, folder / f"out_{repeat}_{len(times[name])}_{workers.export}",
                                             prompts, workers=workers)
                times[name].append(time.perf_counter() - start)
    best = {name: min(values) for name, values in times.items()}
    sequential, parallel = best.values()
    for name, seconds in best.items():
        print(f"{name}: {NUM_CASES} cases ({args.spacing:g} mm, {args.prompts} prompts) in {seconds:.1f} s = "
              f"{60 * NUM_CASES / seconds:.2f} cases/min (runs: {', '.join(f'{t:.1f}' for t in times[name])})")
    print(f"throughput ratio (workers / sequential): {sequential / parallel:.3f}")


if __name__ == "__main__":
    main()
