"""One contrastive epoch with cached image features vs with on-the-fly encoding, same volumes, on CPU.

Setup, all through the project's own commands and functions:
  * an nnU-Net model: the bundled example dataset (real TotalSegmentator CT) planned by
    nnUNetv2_openvocab_plan_and_preprocess (STUNet size --size), a randomly initialised STUNet saved as
    fold_0/checkpoint_final.pth beside its plans.json (weights do not change the timing);
  * --volumes manifest entries, each a copy of the real CT (3 mm, 122x101x112), preprocessed at the
    paper's 1.5 mm and --patch voxels; reports are real CT-RATE reports when ../shared/data is there,
    and captions are sentences of them;
  * the text side: the offline MiniLM, fully trainable, MGCL loss.
The cached epoch reads embeddings written by cache-features; the on-the-fly epoch preprocesses and
encodes every volume with the locked encoder at every step. Epoch time is the sum of the per-step times
logged by `train` (data loading included, validation and checkpointing excluded). Prints both epochs,
their ratio (goal <= 0.02), the one-time cache build and the cache's bytes on disk per volume.

Usage: python benchmarks/bench_pretraining_feature_cache.py [--volumes 4] [--patch 220] [--size B] [--threads N]
       [--workdir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from nnunetv2_openvocab.example_dataset import EXAMPLE_CT, build_example_dataset
from nnunetv2_openvocab.network.stunet import STUNet
from nnunetv2_openvocab.pretraining.cache_features import cache_features
from nnunetv2_openvocab.pretraining.config import PreprocessingConfig, TrainConfig
from nnunetv2_openvocab.pretraining.feature_cache import FeatureCache
from nnunetv2_openvocab.pretraining.run_log import TRAINING_LOG
from nnunetv2_openvocab.pretraining.train import train

DATASET_ID = 990
REPORTS = Path(os.environ.get("OPENVOCAB_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) \
    / "ct_rate_reports" / "train.csv"


def nnunet_model(workdir: Path, size: str) -> Path:
    """Plan the example dataset with the STUNet planner; save a random STUNet in nnU-Net's model layout."""
    env = {**os.environ, "nnUNet_raw": str(workdir / "raw"), "nnUNet_preprocessed": str(workdir / "preprocessed"),
           "nnUNet_results": str(workdir / "results"), "nnUNet_def_n_proc": "2"}
    dataset = build_example_dataset(workdir / "raw", DATASET_ID)
    subprocess.run(["nnUNetv2_openvocab_plan_and_preprocess", "-d", str(DATASET_ID), "--stunet", size,
                    "--text-encoder", "minilm", "-np", "2", "--no_pbar"], env=env, check=True, capture_output=True)
    plans_file = workdir / "preprocessed" / dataset.name / f"nnUNetPlans_STUNet{size}.json"
    architecture = json.loads(plans_file.read_text(encoding="utf-8"))["configurations"]["3d_fullres"]["architecture"]
    network = STUNet(1, 7, **architecture["arch_kwargs"])
    network.apply(network.initialize)
    model = workdir / "model"
    (model / "fold_0").mkdir(parents=True, exist_ok=True)
    shutil.copy(plans_file, model / "plans.json")
    torch.save({"network_weights": network.state_dict()}, model / "fold_0" / "checkpoint_final.pth")
    return model


def manifest(workdir: Path, count: int) -> Path:
    reports = [f"Report {i}: liver and spleen are normal. No pleural effusion. Small nodule in the right lung."
               for i in range(count)]
    if REPORTS.is_file():
        import pandas as pd

        reports = pd.read_csv(REPORTS)["report_text"].tolist()[:count]
    (workdir / "volumes").mkdir(parents=True, exist_ok=True)
    lines = []
    for index, report in enumerate(reports):
        volume = workdir / "volumes" / f"ct_{index}.nii.gz"
        shutil.copy(EXAMPLE_CT, volume)
        sentences = [s.strip() + "." for s in report.split(". ") if s.strip()]
        lines.append(json.dumps({"volume": str(volume), "report": report, "captions": sentences[:6]}))
    path = workdir / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def epoch_seconds(run: Path) -> float:
    return sum(json.loads(line)["seconds"] for line in (run / TRAINING_LOG).read_text(encoding="utf-8").splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--volumes", type=int, default=4)
    parser.add_argument("--patch", type=int, default=220, help="cube edge in voxels at 1.5 mm (paper: 220)")
    parser.add_argument("--size", default="B", choices=["S", "B", "L", "H"], help="STU-Net size (paper: L)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads for both epochs (default: torch's)")
    parser.add_argument("--workdir", help="keep the files here (default: a temporary folder)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_pretraining_"))
    model, entries = nnunet_model(workdir, args.size), manifest(workdir, args.volumes)
    preprocessing = PreprocessingConfig(patch_size=(args.patch,) * 3)
    config = TrainConfig(text_encoder="minilm", batch_size=args.volumes // 2, epochs=1, val_fraction=0.0,
                         warmup_steps=1)

    start = time.perf_counter()
    cache_features(entries, model, workdir / "cache", preprocessing)
    cache_seconds = time.perf_counter() - start
    cached = epoch_seconds(train(entries, workdir / "run_cached", config, cache=workdir / "cache"))
    on_the_fly = epoch_seconds(train(entries, workdir / "run_on_the_fly", config, encoder_checkpoint=model,
                                     preprocessing=preprocessing))

    cache = FeatureCache(workdir / "cache")
    entry_bytes = [path.stat().st_size for path in (cache.folder / "features").glob("*.safetensors")]
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print(f"{args.volumes} volumes of {args.patch}^3 at 1.5 mm, STU-Net {args.size}, batch {config.batch_size}, "
          f"text side: offline MiniLM fully trainable, MGCL")
    print(f"one-time cache build: {cache_seconds:.1f} s ({cache_seconds / args.volumes:.1f} s per volume)")
    print(f"epoch with cached features: {cached:.2f} s")
    print(f"epoch with on-the-fly encoding: {on_the_fly:.2f} s")
    print(f"ratio cached / on-the-fly: {cached / on_the_fly:.4f} (goal <= 0.02)")
    print(f"cache on disk per volume: {sum(entry_bytes) / len(entry_bytes):.0f} bytes "
          f"(+ {(cache.folder / 'image_encoder.safetensors').stat().st_size / 1e6:.1f} MB encoder weights once)")
    print(f"files kept in {workdir}")


if __name__ == "__main__":
    main()
