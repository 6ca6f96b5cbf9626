"""One-GPU readiness check: smoke-scale pretraining, fine-tuning and prediction, peak memory vs estimate.

    bash benchmarks/gpu_check.sh [WORK_FOLDER]      # on a machine with one CUDA GPU; never part of the tests

Uses the demo's dataset (the bundled CT, width-8 STU-Net B, 48^3, MiniLM). Each stage resets CUDA's peak
statistics, runs, and compares torch.cuda.max_memory_allocated() with the estimator's figure for the
same configuration: (1) 2 steps of contrastive pretraining with a randomly initialised, trained encoder,
bf16, --micro-batch 2 and --checkpoint-activations; (2) 30 iterations of nnUNetTrainerOpenVocab (SGD, fp16
autocast); (3) prediction of the six demo prompts on the bundled CT. Writes WORK_FOLDER/gpu_check.json and
prints a markdown table for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from nnunetv2_openvocab.demo import (CONFIGURATION, DATASET_ID, DATASET_NAME, PLANS, demo_environment,
                                     prepare_dataset)
from nnunetv2_openvocab.example_dataset import EXAMPLE_CT, example_prompts

GIB = 1024 ** 3
CUDA = torch.device("cuda")


def _measured(run) -> tuple[int, float]:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated(), time.perf_counter() - start


def pretraining(root: Path, plans: Path):
    from nnunetv2_openvocab.memory_estimate.estimates import estimate_pretraining
    from nnunetv2_openvocab.pretraining.config import PreprocessingConfig, TrainConfig
    from nnunetv2_openvocab.pretraining.memory_options import MemoryOptions
    from nnunetv2_openvocab.pretraining.train import train

    images = sorted((Path(os.environ["nnUNet_raw"]) / DATASET_NAME / "imagesTr").glob("*_0000.nii.gz"))
    manifest = root / "gpu_check" / "manifest.jsonl"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text("".join(json.dumps({"volume": str(image), "report": f"CT report {i}: the liver is normal.",
                                            "captions": ["The liver is normal.", "No abnormality of the spleen."]})
                                + "\n" for i, image in enumerate(images)))
    config = TrainConfig(text_encoder="minilm", batch_size=len(images), num_captions=2, epochs=2, val_fraction=0.0,
                         unlock_image_encoder=True, warmup_steps=1)
    preprocessing = PreprocessingConfig(target_spacing=(3.0, 3.0, 3.0), patch_size=(48, 48, 48))
    memory = MemoryOptions(micro_batch=2, checkpoint_activations=True)
    peak, seconds = _measured(lambda: train(manifest, root / "gpu_check" / "pretrain_run", config, plans=plans,
                                            preprocessing=preprocessing, device="cuda", stop_after_steps=2,
                                            num_workers=0, random_image_encoder=True, memory=memory))
    return peak, seconds, estimate_pretraining(config, plans=plans, preprocessing=preprocessing, device="cuda",
                                               memory=memory)


def fine_tuning():
    from nnunetv2.run.run_training import get_trainer_from_args

    from nnunetv2_openvocab.memory_estimate.trainer_configuration import estimate_trainer_configuration

    trainer = get_trainer_from_args(str(DATASET_ID), CONFIGURATION, "all", "nnUNetTrainerOpenVocab", PLANS, device=CUDA)
    trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch = 1, 30, 5
    peak, seconds = _measured(trainer.run_training)
    return peak, seconds, estimate_trainer_configuration(str(DATASET_ID), CONFIGURATION, "nnUNetTrainerOpenVocab",
                                                         PLANS), trainer.output_folder_base


def prediction(model_folder: str):
    from nnunetv2_openvocab.inference.predictor import OpenVocabPredictor
    from nnunetv2_openvocab.memory_estimate.estimates import estimate_prediction

    prompts = [prompt_list[0] for prompt_list in example_prompts().values()]
    predictor = OpenVocabPredictor(device=CUDA, show_progress=False)
    predictor.initialize_from_trained_model_folder(model_folder, ("all",), "checkpoint_final.pth")
    peak, seconds = _measured(lambda: predictor.predict_single_image(str(EXAMPLE_CT), prompts))
    return peak, seconds, estimate_prediction(model_folder, ("all",), "checkpoint_final.pth", prompts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="openvocab_gpu_check")
    root = Path(parser.parse_args().out).resolve()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device; run it on a GPU machine.")
    env = demo_environment(root)
    if os.environ.get("nnUNet_results") != env["nnUNet_results"]:  # nnU-Net reads its folders once, at import
        raise SystemExit(f"gpu_check: run it through benchmarks/gpu_check.sh, which exports nnU-Net's folders "
                         f"under {root}.")
    os.environ.update(env)
    prepare_dataset(root, env)
    plans = Path(env["nnUNet_preprocessed"]) / DATASET_NAME / f"{PLANS}.json"
    rows = {}
    peak, seconds, estimate = pretraining(root, plans)
    rows["contrastive pretraining (2 steps, bf16, micro-batch 2, checkpointing)"] = (peak, seconds, estimate)
    peak, seconds, estimate, model_folder = fine_tuning()
    rows["fine-tuning (nnUNetTrainerOpenVocab, 30 iterations)"] = (peak, seconds, estimate)
    rows["prediction (bundled CT, 6 prompts)"] = prediction(model_folder)
    print(f"\n{torch.cuda.get_device_name()} | torch {torch.__version__}")
    print("| stage | measured peak GiB | estimate GiB | estimate / measured | seconds |\n| --- | ---: | ---: | ---: | ---: |")
    for stage, (peak, seconds, estimate) in rows.items():
        print(f"| {stage} | {peak / GIB:.3f} | {estimate.peak_bytes / GIB:.3f} | {estimate.peak_bytes / peak:.2f} | "
              f"{seconds:.0f} |")
    (root / "gpu_check.json").write_text(json.dumps(
        {stage: {"measured_bytes": peak, "estimate_bytes": estimate.peak_bytes, "seconds": seconds}
         for stage, (peak, seconds, estimate) in rows.items()}, indent=2))


if __name__ == "__main__":
    main()
