"""The demo (``nnUNetv2_openvocab_demo``): the whole pipeline on the bundled real CT, on CPU, in a bounded time.

Steps (each one is skipped when its result exists, so an interrupted demo resumes where it stopped):
  1. dataset: the bundled TotalSegmentator CT (Apache-2.0, data/ATTRIBUTION.md) as a 3-case nnU-Net dataset
     with text prompts for liver, spleen, both kidneys, aorta and L3 (example_dataset);
  2. plans and preprocessing with the real command (width-8 STU-Net B, 48^3 patches, offline MiniLM encoder);
  3. training with the real ``nnUNetv2_train`` and ``nnUNetTrainerOpenVocab_CPUShort``: a fixed 750 iterations, so
     the result does not depend on how busy the machine is; progress is echoed with an ETA; ``--minutes`` is an
     optional cap (the best checkpoint so far is then used); an interrupted training continues (``--c``);
  4. prediction on the full scan: the six training prompts plus the unseen prompts of the ``example`` set
     (``nnunetv2_openvocab/data/unseen_prompts/example.json``), grounded with that set held out of the taxonomy
     look-up: masks, combined label map, statistics, previews, prompt report; the unseen prompts again by their
     text query alone (the paper's route) in ``predictions_text/``;
  5. evaluation: Dice and NSD per prompt (``evaluate_folder``), printed beside the values recorded for the
     reference run (data/demo_reference.json, also in benchmarks/RESULTS.md), and the unseen prompts' two columns
     (text route = the paper's column, grounded with the set held out = ours; ``evaluation/unseen_columns``).
The cases are slabs of one scan, so the scores show that the pipeline learns real anatomy within minutes,
not how it generalises to other patients.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from nnunetv2_openvocab.prompts.unseen_sets import load_unseen_set
from nnunetv2_openvocab.evaluation.evaluate_folder import evaluate_folder
from nnunetv2_openvocab.evaluation.report_writers import markdown_tables, percent
from nnunetv2_openvocab.evaluation.unseen_columns import (GROUNDED_COLUMN, TEXT_COLUMN, markdown_table, side_by_side,
                                                          write_side_by_side)
from nnunetv2_openvocab.example_dataset import build_example_dataset
from nnunetv2_openvocab.prompts.dataset_prompts import TrainingPrompts
from nnunetv2_openvocab.inference.outputs.case_outputs import OutputOptions
from nnunetv2_openvocab.inference.run_prediction import run_prediction
from nnunetv2_openvocab.trainer_discovery import ext_trainer_value
from nnunetv2_openvocab.training.cpu_variants import nnUNetTrainerOpenVocab_CPUShort
from nnunetv2_openvocab.constants import DEFAULT_STEP_SIZE

DATASET_ID, DATASET_NAME = 990, "Dataset990_OpenVocabExample"
TRAINER, PLANS, CONFIGURATION = "nnUNetTrainerOpenVocab_CPUShort", "nnUNetPlans_STUNetB_width8", "3d_fullres"
PLANNING_ARGS = ["--stunet", "B", "--width", "8", "--text-encoder", "minilm", "--patch-size", "48", "48", "48"]
DEMO_CASE = "example_000"  # the full scan; the other two cases are slabs of it
PROGRESS_WORDS = ("train_loss", "Pseudo dice", "Training done")
EPOCH_TIME = re.compile(r"Epoch time: (?P<seconds>[0-9.]+) s")
REFERENCE_FILE = Path(__file__).parent / "data" / "demo_reference.json"

class DemoError(RuntimeError):
    pass


def demo_environment(root: Path) -> Dict[str, str]:
    """nnU-Net's folders inside the demo folder, CPU-friendly worker counts, no downloads."""
    env = dict(os.environ)
    env.update({"nnUNet_raw": str(root / "nnUNet_raw"), "nnUNet_preprocessed": str(root / "nnUNet_preprocessed"),
                "nnUNet_results": str(root / "nnUNet_results"), "nnUNet_openvocab_cache": str(root / "text_embeddings"),
                "nnUNet_def_n_proc": env.get("nnUNet_def_n_proc", "2"),
                "nnUNet_n_proc_DA": env.get("nnUNet_n_proc_DA", "2"),
                "nnUNet_compile": "false", "nnUNet_extTrainer": ext_trainer_value(env.get("nnUNet_extTrainer")),
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    return env


def command_path(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DemoError(f"Command {name} is not on PATH. Install the package (pip install -e . or pip install "
                        f"nnunetv2-openvocab) in the active environment.")
    return path


def run_logged(arguments: Sequence[str], env: Dict[str, str], log_path: Path,
               deadline_s: Optional[float] = None, progress: Optional["ProgressEcho"] = None,
               cwd: Optional[Path] = None) -> bool:
    """Run a command (in ``cwd``) with its output in ``log_path``, echoing progress lines (``progress``). Returns
    False when it was stopped at the deadline; raises DemoError (with the log's tail) when it fails."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    progress = progress or ProgressEcho()
    start, echoed = time.monotonic(), 0
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(list(arguments), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                   start_new_session=True)  # own process group: its data-loader workers stop with it
        try:
            while process.poll() is None:
                if deadline_s is not None and time.monotonic() - start > deadline_s:
                    _stop(process)
                    return False
                time.sleep(2)
                echoed = progress.echo_new_lines(log_path, echoed)
        except BaseException:
            _stop(process)
            raise
    progress.echo_new_lines(log_path, echoed)
    if process.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise DemoError(f"{Path(arguments[0]).name} failed (exit {process.returncode}); log {log_path}:\n"
                        + "\n".join(tail))
    return True


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class ProgressEcho:
    """Echoes a log's progress lines; with ``total_epochs``, each finished epoch with the ETA of the rest (mean
    epoch time so far, so it adapts to how busy the machine is)."""

    def __init__(self, total_epochs: Optional[int] = None):
        self.total_epochs = total_epochs
        self.epoch_seconds: List[float] = []

    def echo_new_lines(self, log_path: Path, already: int) -> int:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        for line in lines[already:]:
            if any(word in line for word in PROGRESS_WORDS):
                print(f"    {line.strip()}", flush=True)
            epoch = EPOCH_TIME.search(line)
            if epoch and self.total_epochs:
                self.epoch_seconds.append(float(epoch["seconds"]))
                print(f"    {self.eta_line()}", flush=True)
        return len(lines)

    def eta_line(self) -> str:
        done = len(self.epoch_seconds)
        remaining = max(self.total_epochs - done, 0) * sum(self.epoch_seconds) / done
        return (f"epoch {done}/{self.total_epochs} done ({self.epoch_seconds[-1]:.0f} s); "
                f"ETA {math.ceil(remaining / 60)} min")


def prepare_dataset(root: Path, env: Dict[str, str]) -> Path:
    raw = Path(env["nnUNet_raw"])
    dataset_folder = raw / DATASET_NAME
    if not (dataset_folder / "dataset.json").is_file():
        build_example_dataset(raw, DATASET_ID)
    plans_file = Path(env["nnUNet_preprocessed"]) / DATASET_NAME / f"{PLANS}.json"
    if not plans_file.is_file():
        print("[2/5] planning and preprocessing (about a minute)", flush=True)
        run_logged([command_path("nnUNetv2_openvocab_plan_and_preprocess"), "-d", str(DATASET_ID), *PLANNING_ARGS,
                    "-np", env["nnUNet_def_n_proc"], "--no_pbar"], env, root / "logs" / "plan_and_preprocess.log")
    return dataset_folder


def train(root: Path, env: Dict[str, str], minutes: Optional[float] = None) -> Path:
    """Train (or reuse) the demo model for the trainer's fixed number of iterations, capped at ``minutes`` if
    given; returns the model folder."""
    model_folder = Path(env["nnUNet_results"]) / DATASET_NAME / f"{TRAINER}__{PLANS}__{CONFIGURATION}"
    if (model_folder / "fold_all" / "checkpoint_final.pth").is_file():
        print(f"[3/5] reusing the trained model in {model_folder}", flush=True)
        return model_folder
    epochs, iterations, _ = nnUNetTrainerOpenVocab_CPUShort.schedule
    cap = f", stopped after {minutes:g} minutes at the latest" if minutes else ""
    print(f"[3/5] training on CPU: {epochs * iterations} iterations ({epochs} epochs of {iterations}){cap}; log: "
          f"{root / 'logs' / 'train.log'}", flush=True)
    # --c: an interrupted demo continues from nnU-Net's latest checkpoint (nnU-Net starts afresh if there is none)
    command = [command_path("nnUNetv2_train"), str(DATASET_ID), CONFIGURATION, "all", "-tr", TRAINER, "-p", PLANS,
               "-device", "cpu", "--c"]
    finished = run_logged(command, env, root / "logs" / "train.log", minutes * 60 if minutes else None,
                          ProgressEcho(epochs))
    if not finished:
        print(f"    stopped at the {minutes:g}-minute cap before the {epochs * iterations} iterations; using the "
              f"best checkpoint so far (results will fall short of the reference)", flush=True)
    return model_folder


def checkpoint_to_use(model_folder: Path) -> str:
    for name in ("checkpoint_final.pth", "checkpoint_best.pth"):
        if (model_folder / "fold_all" / name).is_file():
            return name
    raise DemoError(f"Training wrote no checkpoint in {model_folder / 'fold_all'} within the time limit. Run the "
                    f"demo again with a larger --minutes.")


def demo_prompt_set(dataset_json: dict) -> dict:
    """Training prompts (one per label) plus the unseen example set, with the labels each one targets."""
    seen = [{"prompt": label.canonical_prompt, "targets": [label.name], "kind": "seen"}
            for label in TrainingPrompts.from_dataset_json(dataset_json).labels]
    unseen = load_unseen_set("example")["prompts"]
    return {"name": "demo", "description": "training prompts (seen) and prompts never used in training",
            "prompts": seen + unseen}


def run_demo(output_folder: Path, minutes: Optional[float] = None, device: Optional[torch.device] = None,
             model_folder: Optional[Path] = None, step_size: float = DEFAULT_STEP_SIZE) -> Dict[str, Path]:
    """Run the demo; ``model_folder`` reuses an already trained model of the example dataset (skips training).
    Returns the paths of the main outputs."""
    root = Path(output_folder).resolve()
    env = demo_environment(root)
    print(f"[1/5] building the example dataset from the bundled CT in {env['nnUNet_raw']}", flush=True)
    dataset_folder = prepare_dataset(root, env) if model_folder is None else \
        build_example_dataset(env["nnUNet_raw"], DATASET_ID)
    model_folder = train(root, env, minutes) if model_folder is None else Path(model_folder)
    dataset_json = json.loads((dataset_folder / "dataset.json").read_text(encoding="utf-8"))
    prompt_set = demo_prompt_set(dataset_json)
    image = dataset_folder / "imagesTr" / f"{DEMO_CASE}_0000.nii.gz"
    print(f"[4/5] predicting {len(prompt_set['prompts'])} prompts on {image.name}", flush=True)
    unseen = {"name": "example", "prompts": [p for p in prompt_set["prompts"] if p["kind"] != "seen"]}
    settings = dict(folds=["all"], checkpoint_name=checkpoint_to_use(model_folder), step_size=step_size,
                    use_mirroring=False, device=device or torch.device("cpu"),
                    embedding_cache_root=env["nnUNet_openvocab_cache"])
    run = run_prediction(model_folder, root / "predictions", image, [p["prompt"] for p in prompt_set["prompts"]],
                         options=OutputOptions(True, True, True),
                         held_out_prompts=[p["prompt"] for p in unseen["prompts"]], **settings)
    run_prediction(model_folder, root / "predictions_text", image, [p["prompt"] for p in unseen["prompts"]],
                   grounding="text", **settings)
    reference = root / "reference"
    reference.mkdir(exist_ok=True)
    shutil.copyfile(dataset_folder / "labelsTr" / f"{DEMO_CASE}.nii.gz", reference / f"{DEMO_CASE}.nii.gz")
    print("[5/5] evaluating Dice and NSD against the TotalSegmentator labels", flush=True)
    summary = evaluate_folder(reference, root / "predictions", dataset_json, root / "metrics", prompt_set,
                              num_processes=1)
    text_summary = evaluate_folder(reference, root / "predictions_text", dataset_json, root / "metrics_text", unseen,
                                   num_processes=1)
    columns = side_by_side({TEXT_COLUMN: text_summary, GROUNDED_COLUMN: summary}, run.report.routes())
    write_side_by_side(columns, root / "metrics")
    print("\n" + markdown_tables(summary, run.report.routes()))
    print(markdown_table(columns))
    print(reference_comparison(summary))
    print(run.report.to_text())
    outputs = {"masks": root / "predictions", "prompt report": run.report_files[1],
               "metrics table": Path(summary["output_files"]["markdown"]),
               "unseen prompts, both routes": root / "metrics" / "unseen_summary.md",
               "previews": root / "predictions" / "previews", "statistics": root / "predictions" / "statistics",
               "combined label map": root / "predictions" / "combined", "model": model_folder}
    print("\nWhere everything is:")
    for name, path in outputs.items():
        print(f"  {name:>18}: {path}")
    return outputs


def reference_comparison(summary: dict) -> str:
    """This run's mean DSC and NSD per prompt beside the reference run's (data/demo_reference.json)."""
    reference = json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))
    lines = [f"Reference run: {reference['recorded']}", "",
             "| prompt | DSC (%) this run | DSC (%) reference | NSD (%) this run | NSD (%) reference |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for prompt in summary["prompts"]:
        mean, recorded = summary["mean"][prompt["prompt"]], reference["prompts"].get(prompt["prompt"], {})
        lines.append(f"| {prompt['prompt']} | {percent(mean['dice'])} | {percent(recorded.get('dice'))} | "
                     f"{percent(mean['nsd'])} | {percent(recorded.get('nsd'))} |")
    return "\n".join(lines) + "\n"
