"""``nnUNetv2_openvocab_eval_unseen``: predict an unseen-prompt set and score it (OpenVocabCT Tables VI/VII;
evaluation/unseen_prompts.py does the work).

A set (the prompt-set format of ``prompt_sets``) lists prompts never used in training, each targeting a
union of training labels: ``{"name", "description", "prompts": [{"prompt", "targets", "kind"}]}``. Shipped
sets live in nnunetv2_openvocab/data/unseen_prompts and are addressed by name (``prompts.unseen_sets``):
``example`` (the demo dataset's labels), ``totalsegmentator_merged``, ``totalsegmentator_synonyms``,
``totalsegmentator_taxonomy`` on v2 labels, ``totalsegmentator_v1_merged``, ``totalsegmentator_v1_synonyms`` on
v1's 104 classes (the paper's protocol); any other value is a JSON file path.
Entries whose targets are not all labels of the evaluated dataset are left out and listed.

Every prompt is scored twice: ``text`` (its own text query: the paper's column) and ``grounded_held_out``
(grounding with the set's prompts and recorded synonyms held out of the taxonomy look-up: ours).
Output folder: ``unseen_summary.{json,md}`` and ``unseen_dsc.png`` (both columns, labelled), per column
``predictions/<column>/`` (masks, prompt report) and ``metrics/<column>/`` (evaluate_folder's CSV, JSON, markdown,
PNG), and ``unseen_set.json`` (the entries evaluated and those left out).
"""
from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence

import torch
from nnunetv2.configuration import default_num_processes

from nnunetv2_openvocab.commands.prediction_arguments import (add_grounding_arguments, add_prediction_arguments,
                                                              parse_folds)
from nnunetv2_openvocab.evaluation.metrics import DEFAULT_TOLERANCE_MM
from nnunetv2_openvocab.evaluation.unseen_columns import markdown_table
from nnunetv2_openvocab.evaluation.unseen_prompts import evaluate_unseen_prompts
from nnunetv2_openvocab.user_errors import exit_on_user_error

EPILOG = """\
example (the demo model; references are nnU-Net label maps <case>.nii.gz):
  nnUNetv2_openvocab_eval_unseen -m MODEL_FOLDER -f all -i imagesTs -ref labelsTs --set example -o unseen_eval
  nnUNetv2_openvocab_eval_unseen -m MODEL_FOLDER -i imagesTs -ref labelsTs --set totalsegmentator_merged -o out

set file: {"name": "merged", "description": "...",
           "prompts": [{"prompt": "renal organs", "targets": ["kidney_left", "kidney_right"], "kind": "merged"}]}
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnUNetv2_openvocab_eval_unseen", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Predict prompts never seen in training and report Dice and NSD "
                                                 "per prompt against unions of training labels, by the text route "
                                                 "(the paper's column) and by grounding with the set held out.")
    parser.add_argument("-m", required=True, help="model folder written by nnUNetv2_train")
    parser.add_argument("-i", required=True, help="images (file, folder, DICOM series folder)")
    parser.add_argument("-ref", required=True, help="folder of reference label maps <case><file_ending>")
    parser.add_argument("--set", required=True, help="unseen-prompt set: a shipped name (example, "
                                                     "totalsegmentator_merged, ...) or a JSON file")
    parser.add_argument("-o", required=True, help="output folder")
    parser.add_argument("-dj", default=None, help="dataset.json of the references (default: the model's)")
    add_prediction_arguments(parser)
    add_grounding_arguments(parser, with_mode=False)
    parser.add_argument("--tolerance-mm", type=float, default=DEFAULT_TOLERANCE_MM, help="NSD tolerance (mm)")
    parser.add_argument("-np", type=int, default=default_num_processes, help="evaluation worker processes")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    with exit_on_user_error("nnUNetv2_openvocab_eval_unseen"):
        summary = evaluate_unseen_prompts(args.m, args.i, args.ref, args.set, args.o, args.dj, parse_folds(args.f),
                                          args.chk, args.step_size, not args.disable_tta, torch.device(args.device),
                                          args.tolerance_mm, args.np, not args.disable_progress_bar,
                                          args.grounding_threshold)
    print(markdown_table(summary["table"]))
    if summary["left_out"]:
        print(f"Left out (targets not in this dataset): {[e.get('prompt') for e in summary['left_out']]}")
    for kind, path in summary["output_files"].items():
        print(f"{kind:>9}: {path}")
    print(f"   prompt report: {', '.join(summary['prompt_report'])}")
