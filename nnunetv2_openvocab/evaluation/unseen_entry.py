"""``nnUNetv2_openvocab_eval_unseen``: predict an unseen-prompt set and score it (OpenVocabCT Tables VI/VII).

A set (the prompt-set format of ``prompt_sets``) lists prompts never used in training, each targeting a
union of training labels: ``{"name", "description", "prompts": [{"prompt", "targets", "kind"}]}``. Shipped
sets live in dataset_conversion/data/unseen_prompts and are addressed by name (``dataset_conversion.unseen_sets``):
``example`` (the demo dataset's labels), ``totalsegmentator_merged``, ``totalsegmentator_synonyms``,
``totalsegmentator_taxonomy`` on v2 labels, ``totalsegmentator_v1_merged``, ``totalsegmentator_v1_synonyms`` on
v1's 104 classes (the paper's protocol); any other value is a JSON file path.
Entries whose targets are not all labels of the evaluated dataset are left out and listed.

Output folder: ``predictions/`` (masks, prompt report), ``metrics/`` (evaluate_folder's CSV, JSON, markdown,
PNG) and ``unseen_set.json`` (the entries evaluated and those left out).
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
from nnunetv2.configuration import default_num_processes

from dataset_conversion.unseen_sets import UNSEEN_DIR, load_unseen_set
from nnunetv2_openvocab.evaluation.evaluate_folder import evaluate_folder
from nnunetv2_openvocab.evaluation.metrics import DEFAULT_TOLERANCE_MM
from nnunetv2_openvocab.evaluation.prompt_sets import structure_label_names
from nnunetv2_openvocab.evaluation.report_writers import markdown_tables
from nnunetv2_openvocab.inference.model_loading import DEFAULT_CHECKPOINT, Fold
from nnunetv2_openvocab.inference.grounding import MATCH_THRESHOLD
from nnunetv2_openvocab.inference.predict_entry import (add_grounding_arguments, add_prediction_arguments, parse_folds,
                                                        run_prediction)
from nnunetv2_openvocab.atomic_files import write_json_atomic
from nnunetv2_openvocab.user_errors import exit_on_user_error

logger = logging.getLogger(__name__)

EPILOG = """\
example (the demo model; references are nnU-Net label maps <case>.nii.gz):
  nnUNetv2_openvocab_eval_unseen -m MODEL_FOLDER -f all -i imagesTs -ref labelsTs --set example -o unseen_eval
  nnUNetv2_openvocab_eval_unseen -m MODEL_FOLDER -i imagesTs -ref labelsTs --set totalsegmentator_merged -o out

set file: {"name": "merged", "description": "...",
           "prompts": [{"prompt": "renal organs", "targets": ["kidney_left", "kidney_right"], "kind": "merged"}]}
"""


def load_unseen_prompt_set(name_or_path: Union[str, Path]) -> Tuple[dict, str]:
    """(set content, the file it came from): a JSON file, else a shipped set by name."""
    path = Path(name_or_path)
    if not path.is_file():
        try:
            return load_unseen_set(str(name_or_path)), str(UNSEEN_DIR / f"{name_or_path}.json")
        except FileNotFoundError as error:
            raise FileNotFoundError(f"--set {name_or_path!r} is neither a file nor a shipped set ({error})") from None
    try:
        return json.loads(path.read_text(encoding="utf-8")), str(path)
    except json.JSONDecodeError as error:
        raise ValueError(f"Unseen-prompt set {path} is not valid JSON ({error}). Format: see --help.") from None


def applicable_entries(prompt_set: Mapping, label_names: Sequence[str]) -> Tuple[dict, list]:
    """The set restricted to entries whose targets all exist in ``label_names``, and the entries left out."""
    if not isinstance(prompt_set.get("prompts"), list):
        raise ValueError('An unseen-prompt set needs a "prompts" list: {"prompts": [{"prompt": "renal organs", '
                         '"targets": ["kidney_left", "kidney_right"], "kind": "merged"}]}.')
    kept, left_out = [], []
    for entry in prompt_set["prompts"]:
        targets = entry.get("targets") if isinstance(entry, Mapping) else None
        fits = isinstance(targets, list) and targets and set(targets) <= set(label_names)
        (kept if fits else left_out).append(entry)
    if not kept:
        raise ValueError(f"No entry of set {prompt_set.get('name')!r} targets only labels of this dataset "
                         f"({list(label_names)}). Pick a set written for these labels, e.g. --set example.")
    return {**prompt_set, "prompts": kept}, left_out


def evaluate_unseen_prompts(model_folder: Union[str, Path], images: Union[str, Path],
                            reference_folder: Union[str, Path], prompt_set: Union[str, Path],
                            output_folder: Union[str, Path],
                            dataset_json: Optional[Union[str, Path]] = None, folds: Optional[Sequence[Fold]] = None,
                            checkpoint_name: str = DEFAULT_CHECKPOINT, step_size: float = 0.5,
                            use_mirroring: bool = True, device: Optional[torch.device] = None,
                            tolerance_mm: float = DEFAULT_TOLERANCE_MM, num_processes: int = default_num_processes,
                            show_progress: bool = True, grounding: str = "auto",
                            grounding_threshold: float = MATCH_THRESHOLD) -> Dict:
    """Predict the applicable prompts of ``prompt_set`` on ``images`` and score them; returns evaluate_folder's
    summary with ``left_out`` (entries whose targets the dataset lacks) and the ``prompt_report`` files added."""
    output_folder = Path(output_folder)
    dataset_json = Path(dataset_json or Path(model_folder) / "dataset.json")
    dataset = json.loads(dataset_json.read_text(encoding="utf-8"))
    content, source = load_unseen_prompt_set(prompt_set)
    applied, left_out = applicable_entries(content, structure_label_names(dataset))
    if left_out:
        logger.warning("Left out %d entries of %s whose targets are not labels of %s: %s", len(left_out), source,
                       dataset_json, [e.get("prompt") for e in left_out])
    prompts = [entry["prompt"] for entry in applied["prompts"]]
    run = run_prediction(model_folder, output_folder / "predictions", images, prompts, folds=folds,
                   checkpoint_name=checkpoint_name, step_size=step_size, use_mirroring=use_mirroring, device=device,
                   show_progress=show_progress, grounding=grounding, grounding_threshold=grounding_threshold)
    summary = evaluate_folder(reference_folder, output_folder / "predictions", dataset, output_folder / "metrics",
                              prompt_set=applied, tolerance_mm=tolerance_mm, num_processes=num_processes)
    write_json_atomic(output_folder / "unseen_set.json", {"source": source, "evaluated": applied, "left_out": left_out})
    return {**summary, "left_out": left_out, "prompt_report": [str(p) for p in run.report_files]}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnUNetv2_openvocab_eval_unseen", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Predict prompts never seen in training and report Dice and NSD "
                                                 "per prompt against unions of training labels.")
    parser.add_argument("-m", required=True, help="model folder written by nnUNetv2_train")
    parser.add_argument("-i", required=True, help="images (file, folder, DICOM series folder)")
    parser.add_argument("-ref", required=True, help="folder of reference label maps <case><file_ending>")
    parser.add_argument("--set", required=True, help="unseen-prompt set: a shipped name (example, "
                                                     "totalsegmentator_merged, ...) or a JSON file")
    parser.add_argument("-o", required=True, help="output folder")
    parser.add_argument("-dj", default=None, help="dataset.json of the references (default: the model's)")
    add_prediction_arguments(parser)
    add_grounding_arguments(parser)
    parser.add_argument("--tolerance-mm", type=float, default=DEFAULT_TOLERANCE_MM, help="NSD tolerance (mm)")
    parser.add_argument("-np", type=int, default=default_num_processes, help="evaluation worker processes")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    with exit_on_user_error("nnUNetv2_openvocab_eval_unseen"):
        summary = evaluate_unseen_prompts(args.m, args.i, args.ref, args.set, args.o, args.dj, parse_folds(args.f),
                                          args.chk, args.step_size, not args.disable_tta, torch.device(args.device),
                                          args.tolerance_mm, args.np, not args.disable_progress_bar, args.grounding,
                                          args.grounding_threshold)
    print(markdown_tables(summary))
    if summary["left_out"]:
        print(f"Left out (targets not in this dataset): {[e.get('prompt') for e in summary['left_out']]}")
    for kind, path in summary["output_files"].items():
        print(f"{kind:>9}: {path}")
    print(f"   prompt report: {', '.join(summary['prompt_report'])}")
