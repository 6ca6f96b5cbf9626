"""Grounding on everyday paraphrases (issue 21): route precision and recall, the nearest-entry threshold calibrated
on the calibration half, and on a trained model the DSC gap between grounded answers and the union of the seen
labels' masks, on the test half only (benchmarks/paraphrase_set.py: split by structure family).

  (a) routes, TotalSegmentator v2 labels with their taxonomy prompts: a prompt is routed when grounding answers
      it with labels (label or union route); correct when those labels are its targets. Precision = correct /
      routed, recall = correct / prompts; per paraphrase kind, at MATCH_THRESHOLD and at the threshold chosen on
      the calibration half (lowest with precision >= --precision on the prompts only the nearest route reaches);
      the definition route at its calibrated threshold (data/definition_calibration.json, written by
      benchmarks/calibrate_definitions.py from the calibration half): precision over the test-half prompts it
      answers, recall over the test half's 'described' prompts (definition paraphrases) by any route.
  (b) with --model-folder: the test-half prompts whose targets the model learnt, on the bundled CT: DSC of the
      grounded answer (``--grounding auto``) and of the union of the target labels' masks predicted with their
      canonical prompts, against the CT's TotalSegmentator labels; and what grounding costs: grounding 32 of those
      prompts afresh (warm embeddings) over one 32-prompt prediction; and side safety: how many of those prompts
      that name a side got a mask whose majority lies on the patient's other side (direction cosines, body midline).

Usage: OPENVOCAB_SHARED_DATA=../shared/data python benchmarks/bench_paraphrases.py [--text-encoder minilm]
       [--model-folder MODEL [--checkpoint checkpoint_final.pth]]
"""
from __future__ import annotations

import argparse
import platform
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import SimpleITK as sitk
import torch

from dataset_conversion.label_tables import load_label_table
from nnunetv2_openvocab.evaluation.metrics import dice_coefficient
from nnunetv2_openvocab.example_dataset import DEFAULT_STRUCTURES, EXAMPLE_CT, EXAMPLE_SEGMENTATION, remap_labels
from nnunetv2_openvocab.prompts.definition_route import DEFINITION, calibrated_definition_threshold
from nnunetv2_openvocab.prompts.grounding import MATCH_THRESHOLD, TEXT, PromptGrounder
from nnunetv2_openvocab.prompts.normalisation import prompt_side
from nnunetv2_openvocab.inference.predictor import OpenVocabPredictor
from nnunetv2_openvocab.prompts.taxonomy import load_taxonomy
from second_encoder import benchmark_embed
from paraphrase_set import CALIBRATION, TEST, build_paraphrase_set
from nnunetv2_openvocab.prompts.dataset_prompts import TrainingPrompts


def routed_labels(grounder: PromptGrounder, prompts: List[str], threshold: float) -> Dict[str, Optional[frozenset]]:
    """{prompt: labels it is answered with, or None on the text route} at ``threshold``."""
    grounder.match_threshold = threshold
    return {g.prompt: (None if g.route == TEXT else frozenset(g.labels)) for g in grounder.ground(prompts)}


def scores(entries: List[dict], routes: Dict[str, Optional[frozenset]]) -> Dict[str, tuple]:
    """{kind (and 'all'): (prompts, routed, correct, precision, recall)}."""
    by_kind = defaultdict(list)
    for entry in entries:
        by_kind[entry["kind"]].append(entry)
        by_kind["all"].append(entry)
    out = {}
    for kind, group in sorted(by_kind.items()):
        routed = [e for e in group if routes[e["prompt"]] is not None]
        correct = [e for e in routed if routes[e["prompt"]] == frozenset(e["targets"])]
        out[kind] = (len(group), len(routed), len(correct), len(correct) / len(routed) if routed else 1.0,
                     len(correct) / len(group))
    return out


def calibrate(grounder: PromptGrounder, entries: List[dict], precision: float) -> Optional[float]:
    """Lowest threshold at which the calibration half keeps route precision >= ``precision``."""
    prompts = [e["prompt"] for e in entries]
    for threshold in [x / 100 for x in range(70, 100)]:
        if scores(entries, routed_labels(grounder, prompts, threshold))["all"][3] >= precision:
            return threshold
    return None


def print_scores(title: str, table: Dict[str, tuple]) -> None:
    print(f"{title}\n| kind | prompts | routed | correct | precision | recall |\n|---|---:|---:|---:|---:|---:|")
    for kind, (n, routed, correct, precision, recall) in table.items():
        print(f"| {kind} | {n} | {routed} | {correct} | {precision:.3f} | {recall:.3f} |")


def route_part(text_encoder: str, precision: float, entries: List[dict]) -> None:
    taxonomy = load_taxonomy()
    labels = list(load_label_table("totalsegmentator_v2").labels)
    embed = benchmark_embed(text_encoder)
    grounder = PromptGrounder(TrainingPrompts.from_mapping({n: taxonomy.prompts_for(n) for n in labels}), embed, taxonomy,
                              definition_threshold=calibrated_definition_threshold(text_encoder))
    calibration = [e for e in entries if e["half"] == CALIBRATION]
    test = [e for e in entries if e["half"] == TEST]
    chosen = calibrate(grounder, calibration, precision)
    print(f"encoder {text_encoder}: {len(entries)} paraphrases, calibration {len(calibration)}, test {len(test)}; "
          f"threshold with calibration precision >= {precision}: {chosen}")
    for threshold in dict.fromkeys([MATCH_THRESHOLD, chosen]):
        if threshold is not None:
            print_scores(f"test half, threshold {threshold:.2f}, definition threshold {grounder.definition_threshold}",
                         scores(test, routed_labels(grounder, [e["prompt"] for e in test], threshold)))
    definition_part(grounder, test)


def definition_part(grounder: PromptGrounder, test: List[dict]) -> None:
    """The definition route alone on the test half, at MATCH_THRESHOLD and the calibrated definition threshold."""
    grounder.match_threshold = MATCH_THRESHOLD
    found = dict(zip([e["prompt"] for e in test], grounder.ground([e["prompt"] for e in test])))
    answered = [e for e in test if found[e["prompt"]].via == DEFINITION]
    right = [e for e in answered if found[e["prompt"]].route != TEXT and set(found[e["prompt"]].labels) == set(e["targets"])]
    described = [e for e in test if e["kind"] == "described"]
    reached = [e for e in described if found[e["prompt"]].route != TEXT and set(found[e["prompt"]].labels) == set(e["targets"])]
    print(f"definition route, test half (threshold {grounder.definition_threshold}): answered {len(answered)}, "
          f"correct {len(right)}, precision {len(right) / max(len(answered), 1):.3f}; described prompts "
          f"{len(described)}, correctly routed {len(reached)} (recall {len(reached) / max(len(described), 1):.3f}), "
          f"of which by the definition route {sum(found[e['prompt']].via == DEFINITION for e in reached)}")
    for e in answered:
        g = found[e["prompt"]]
        print(f"  {'ok ' if e in right else 'BAD'} {e['prompt']!r} -> {g.structure} {list(g.labels)} ({g.reason[-45:]})")


def dsc_part(model_folder: Path, checkpoint: str, entries: List[dict]) -> None:
    auto = OpenVocabPredictor(1.0, use_mirroring=False, device=torch.device("cpu"), show_progress=False,
                              grounding="auto").initialize_from_trained_model_folder(model_folder, ("all",),
                                                                                     checkpoint)
    learnt = set(auto.model.spec.label_names)
    test = [e for e in entries if e["half"] == TEST and set(e["targets"]) <= learnt]
    canonical = dict(zip(auto.model.spec.label_names, auto.training_prompts))
    prompts = [e["prompt"] for e in test]
    started = time.perf_counter()
    masks = auto.predict_single_image(EXAMPLE_CT, prompts + list(canonical.values()))
    prediction_s = time.perf_counter() - started
    reference = remap_labels(sitk.GetArrayFromImage(sitk.ReadImage(str(EXAMPLE_SEGMENTATION))), DEFAULT_STRUCTURES)
    groundings = {g.prompt: g for g in auto.ground(prompts)}
    print("| prompt | kind | route (labels) | DSC grounded | DSC union of seen | gap |\n|---|---|---|---:|---:|---:|")
    gaps, correct = [], 0
    for entry in test:
        target = np.isin(reference, [DEFAULT_STRUCTURES.index(t) + 1 for t in entry["targets"]])
        union = np.logical_or.reduce([masks[canonical[t]] > 0 for t in entry["targets"]])
        g = groundings[entry["prompt"]]
        grounded, seen = (100 * dice_coefficient(target, m) for m in (masks[entry["prompt"]] > 0, union))
        gaps.append(grounded - seen)
        correct += g.route != TEXT and set(g.labels) == set(entry["targets"])
        route = g.route + (f" ({' + '.join(g.labels)})" if g.labels else "")
        print(f"| {entry['prompt']} | {entry['kind']} | {route} | {grounded:.1f} | {seen:.1f} | {gaps[-1]:+.1f} |")
    routed = sum(g.route != TEXT for g in groundings.values())
    sided = [p for p in prompts if prompt_side(p)]
    wrong_side = [p for p in sided if majority_on_other_side(masks[p] > 0, prompt_side(p))]
    print(f"side safety: {len(sided)} sided prompts, {len(wrong_side)} with a mask mostly on the patient's other side "
          f"{wrong_side or ''}")
    print(f"{len(test)} test-half prompts on learnt structures: mean DSC gap {np.mean(gaps):+.2f} points, worst "
          f"{min(gaps):+.1f}; routed {routed}, correct {correct}, precision {correct / max(routed, 1):.3f}")
    timed = (prompts * 2)[:32]
    fresh = OpenVocabPredictor(grounding="auto").initialize_from_trained_model_folder(model_folder, ("all",),
                                                                                      checkpoint)
    fresh.embed(timed)  # warm embeddings: grounding's own work is what is timed
    started = time.perf_counter()
    fresh.ground(timed)
    grounding_s = time.perf_counter() - started
    per_32 = prediction_s * 32 / len(prompts + list(canonical.values()))
    print(f"grounding 32 prompts: {grounding_s:.3f} s; the {len(prompts) + len(canonical)}-prompt prediction "
          f"{prediction_s:.1f} s (~{per_32:.1f} s per 32 prompts): {100 * grounding_s / per_32:.2f} %")


def majority_on_other_side(mask: np.ndarray, side: str) -> bool:
    """Whether most of the mask lies on the patient's other side of the body's median LPS x (patient left: +x);
    ``mask`` in SimpleITK's array layout on the bundled CT's grid."""
    image = sitk.ReadImage(str(EXAMPLE_CT))

    def physical_x(selected: np.ndarray) -> np.ndarray:
        z, y, x = np.nonzero(selected)
        index = np.stack([x, y, z]) * np.array(image.GetSpacing())[:, None]
        return image.GetOrigin()[0] + (np.array(image.GetDirection()).reshape(3, 3) @ index)[0]

    midline = np.median(physical_x(sitk.GetArrayFromImage(image) > -500))
    x = physical_x(mask)
    other = (x < midline) if side == "left" else (x > midline)
    return bool(x.size) and 2 * int(other.sum()) > x.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text-encoder", default="minilm", help="minilm, or the second encoder "
                        "paraphrase-minilm-l3-v2 (benchmarks/second_encoder.py)")
    parser.add_argument("--precision", type=float, default=0.98)
    parser.add_argument("--model-folder", type=Path)
    parser.add_argument("--checkpoint", default="checkpoint_final.pth")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    entries = build_paraphrase_set()
    route_part(args.text_encoder, args.precision, entries)
    if args.model_folder is not None:
        dsc_part(args.model_folder, args.checkpoint, entries)


if __name__ == "__main__":
    main()
