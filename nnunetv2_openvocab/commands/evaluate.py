"""``nnUNetv2_openvocab_evaluate``: Dice, NSD and lesion detection of per-prompt predictions against references."""
from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence

from nnunetv2.configuration import default_num_processes

from nnunetv2_openvocab.evaluation.cross_validation import CV_FOLDS, evaluate_cross_validation
from nnunetv2_openvocab.evaluation.evaluate_folder import evaluate_folder
from nnunetv2_openvocab.evaluation.metrics import DEFAULT_DETECTION_THRESHOLD_ML, DEFAULT_TOLERANCE_MM
from nnunetv2_openvocab.evaluation.report_writers import markdown_tables
from nnunetv2_openvocab.user_errors import exit_on_user_error

EPILOG = """\
example:
  nnUNetv2_openvocab_evaluate -ref nnUNet_raw/Dataset801_Abdomen/labelsTs -pred predictions \\
      -dj nnUNet_raw/Dataset801_Abdomen/dataset.json -o evaluation --tolerance-mm 1 \\
      --detection-prompts "liver tumor" --detection-threshold-ml 0.1

  nnUNetv2_openvocab_evaluate -ref labelsTs -pred stock_nnunet_predictions -dj dataset.json -o eval_nnunet
  nnUNetv2_openvocab_evaluate --cv $nnUNet_results/Dataset801_Abdomen/nnUNetTrainer__nnUNetPlans__3d_fullres \
      -ref nnUNet_raw/Dataset801_Abdomen/labelsTr -o eval_cv          # fold_0..4/validation as one evaluation

Predictions are the binary masks written by nnUNetv2_openvocab_predict, <case>_<prompt-slug><file_ending>, or
label maps <case><file_ending> (stock nnUNetv2_predict), scored with dataset.json's label values.
Without --prompts-file every label's canonical prompt (text_prompts[label][0]) is evaluated. A prompt-set
file evaluates other prompts against unions of labels, e.g.
  {"name": "merged", "description": "merged organs",
   "prompts": [{"prompt": "renal organs", "targets": ["kidney_left", "kidney_right"], "kind": "merged"},
               {"prompt": "liver lesion", "targets": ["liver_tumor"], "kind": "lesion"}]}
("kind": "lesion" entries also get patient-level detection scores).
When the labels are TotalSegmentator classes (v1 or v2), the means are also grouped into the paper's
Table II categories (vertebrae, cardiac, muscles, organs, ribs, Avg).
Writes metrics_per_case.csv, summary.json, summary.md and mean_dsc_nsd.png into -o.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnUNetv2_openvocab_evaluate",
        description="Per case and prompt: Dice and normalized surface distance (surface Dice, at the original "
                    "voxel spacing); means per prompt; patient-level detection for lesion prompts.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-ref", required=True, help="folder of reference label maps <case><file_ending>")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-pred", help="folder of per-prompt binary masks or of label maps <case><file_ending>")
    source.add_argument("--cv", metavar="RESULTS_FOLDER",
                        help="nnU-Net results folder (TRAINER__PLANS__CONFIG): score its fold_k/validation label maps "
                             "as one evaluation (-ref: the dataset's labelsTr)")
    parser.add_argument("--cv-folds", type=int, nargs="+", default=list(CV_FOLDS), help="folds of --cv "
                        "(default %(default)s)")
    parser.add_argument("-dj", help="dataset.json with labels (and text_prompts, annotated_labels); with --cv the "
                                    "results folder's by default")
    parser.add_argument("-o", required=True, help="output folder for the CSV, JSON, markdown and PNG")
    parser.add_argument("--prompts-file", help="prompt-set JSON (prompts and their target labels); see below")
    parser.add_argument("--tolerance-mm", type=float, default=DEFAULT_TOLERANCE_MM,
                        help=f"NSD tolerance in mm (default {DEFAULT_TOLERANCE_MM:g})")
    parser.add_argument("--detection-prompts", nargs="+", default=[], metavar="PROMPT",
                        help="prompts (exact text) that also get lesion detection scores")
    parser.add_argument("--detection-threshold-ml", type=float, default=DEFAULT_DETECTION_THRESHOLD_ML,
                        help="a case is predicted positive when its largest predicted component exceeds this "
                             f"volume in ml (default {DEFAULT_DETECTION_THRESHOLD_ML:g}); tune it on validation data")
    parser.add_argument("-np", type=int, default=default_num_processes,
                        help=f"worker processes (default {default_num_processes}, env nnUNet_def_n_proc)")
    parser.add_argument("--totalseg-version", choices=("v1", "v2"),
                        help="TotalSegmentator class groups for the Table II categories (default: detected from "
                             "the label names; v2 when they fit both)")
    parser.add_argument("--chill", action="store_true",
                        help="skip (case, prompt) pairs whose prediction file is missing instead of failing")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.cv is None and args.dj is None:
        build_parser().error("-dj is required with -pred")
    settings = dict(prompt_set=args.prompts_file, tolerance_mm=args.tolerance_mm,
                    detection_prompts=args.detection_prompts, detection_threshold_ml=args.detection_threshold_ml,
                    num_processes=args.np, allow_missing=args.chill, totalsegmentator_version=args.totalseg_version)
    with exit_on_user_error("nnUNetv2_openvocab_evaluate"):
        summary = (evaluate_folder(args.ref, args.pred, args.dj, args.o, **settings) if args.cv is None else
                   evaluate_cross_validation(args.cv, args.ref, args.o, args.dj, args.cv_folds, **settings))
    print(markdown_tables(summary))
    for kind, path in summary["output_files"].items():
        print(f"{kind:>9}: {path}")
