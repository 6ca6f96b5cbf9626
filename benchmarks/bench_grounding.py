"""Grounding (issue 14): DSC per unseen prompt under ``--grounding text`` vs ``auto``, and what grounding costs.

Model: a width-8 STU-Net B trained on the example dataset (the test session's, or the demo's). Image: the
bundled CT (the example dataset's ``example_000``), reference: its TotalSegmentator labels.

  (a) DSC per prompt of the shipped ``example`` unseen set: the text query (``text``), the grounded answer
      (``auto``), and the union of the prompt's target labels' masks predicted with their canonical prompts
      (``union of seen``), all from ``predict_single_image``. Goals: every prompt that auto resolves within
      1 DSC point of ``union of seen``; auto never more than 1 point below text.
  (b) time of a 32-prompt prediction (``initialize_from_trained_model_folder`` + ``predict_single_image``, the
      32 TotalSegmentator names of bench_inference.py; warm embedding cache) with auto / with text, alternating
      --repeats times; the median of the paired ratios. Goal <= 1.02. Also the grounding of the 32 prompts alone.

Usage: python benchmarks/bench_grounding.py --model-folder MODEL [--checkpoint checkpoint_best.pth] [--repeats 3]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from bench_inference import benchmark_prompts, checkpoint_name, seconds
from nnunetv2_openvocab.evaluation.metrics import dice_coefficient
from nnunetv2_openvocab.prompts.unseen_sets import load_unseen_set
from nnunetv2_openvocab.example_dataset import DEFAULT_STRUCTURES, EXAMPLE_CT, EXAMPLE_SEGMENTATION, remap_labels
from nnunetv2_openvocab.inference.predictor import OpenVocabPredictor


def make_predictor(model_folder: Path, checkpoint: str, grounding: str) -> OpenVocabPredictor:
    # tile step 1.0 (no overlap): the same for both sides, and affordable on a shared 2-core machine
    return OpenVocabPredictor(1.0, use_mirroring=False, device=torch.device("cpu"), show_progress=False,
                              grounding=grounding).initialize_from_trained_model_folder(model_folder, ("all",),
                                                                                         checkpoint)


def dsc_table(model_folder: Path, checkpoint: str) -> list:
    entries = load_unseen_set("example")["prompts"]
    reference = remap_labels(sitk.GetArrayFromImage(sitk.ReadImage(str(EXAMPLE_SEGMENTATION))), DEFAULT_STRUCTURES)
    text = make_predictor(model_folder, checkpoint, "text")
    auto = make_predictor(model_folder, checkpoint, "auto")
    canonical = dict(zip(text.model.spec.label_names, text.training_prompts))
    prompts = [e["prompt"] for e in entries]
    text_masks = text.predict_single_image(EXAMPLE_CT, prompts + list(canonical.values()))
    auto_masks = auto.predict_single_image(EXAMPLE_CT, prompts)
    groundings = {g.prompt: g for g in auto.ground(prompts)}
    rows = []
    for entry in entries:
        target = np.isin(reference, [DEFAULT_STRUCTURES.index(t) + 1 for t in entry["targets"]])
        union = np.logical_or.reduce([text_masks[canonical[t]] > 0 for t in entry["targets"]])
        g = groundings[entry["prompt"]]
        rows.append({"prompt": entry["prompt"], "kind": entry["kind"], "route": g.route, "labels": list(g.labels),
                     "text": 100 * dice_coefficient(target, text_masks[entry["prompt"]] > 0),
                     "auto": 100 * dice_coefficient(target, auto_masks[entry["prompt"]] > 0),
                     "union_of_seen": 100 * dice_coefficient(target, union)})
    return rows


def cost(model_folder: Path, checkpoint: str, repeats: int) -> dict:
    prompts = benchmark_prompts()
    runs = {"text": [], "auto": []}
    for mode in ("text", "auto"):  # warm the embedding cache for both
        make_predictor(model_folder, checkpoint, mode).predict_single_image(EXAMPLE_CT, prompts[:1])
    for _ in range(repeats):
        for mode in ("text", "auto"):
            runs[mode].append(seconds(lambda: make_predictor(model_folder, checkpoint, mode)
                                      .predict_single_image(EXAMPLE_CT, prompts)))
    predictor = make_predictor(model_folder, checkpoint, "auto")
    grounding_only = seconds(lambda: predictor.ground(prompts))
    ratios = [a / t for a, t in zip(runs["auto"], runs["text"])]
    routes = [g.route for g in predictor.ground(prompts)]
    return {"runs": runs, "ratios": ratios, "median_ratio": statistics.median(ratios),
            "grounding_only_s": grounding_only, "routes": {r: routes.count(r) for r in set(routes)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-folder", type=Path, required=True)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-cost", action="store_true")
    args = parser.parse_args()
    checkpoint = checkpoint_name(args.model_folder, args.checkpoint)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}; "
          f"model {args.model_folder} ({checkpoint})")
    print("| prompt | kind | route (labels) | DSC text | DSC auto | DSC union of seen | auto - union | auto - text |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in dsc_table(args.model_folder, checkpoint):
        route = r["route"] + (f" ({' + '.join(r['labels'])})" if r["labels"] else "")
        print(f"| {r['prompt']} | {r['kind']} | {route} | {r['text']:.1f} | {r['auto']:.1f} | "
              f"{r['union_of_seen']:.1f} | {r['auto'] - r['union_of_seen']:+.1f} | {r['auto'] - r['text']:+.1f} |")
    if not args.skip_cost:
        result = cost(args.model_folder, checkpoint, args.repeats)
        print(f"32-prompt prediction, auto / text: runs text {[round(t, 1) for t in result['runs']['text']]} s, "
              f"auto {[round(t, 1) for t in result['runs']['auto']]} s; paired ratios "
              f"{[round(r, 3) for r in result['ratios']]}; median {result['median_ratio']:.3f}; grounding the 32 "
              f"prompts alone {result['grounding_only_s']:.2f} s; routes {result['routes']}")


if __name__ == "__main__":
    main()
