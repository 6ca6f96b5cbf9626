"""``nnUNetv2_openvocab_eval_transfer``: a model on another dataset's labels without fine-tuning (OpenVocabCT Tables
IX/X: TotalSegmentator -> FLARE22, SegTHOR); evaluation/transfer.py does the work."""
from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence

import torch
from nnunetv2.configuration import default_num_processes

from nnunetv2_openvocab.commands.prediction_arguments import (add_grounding_arguments, add_prediction_arguments,
                                                              parse_folds)
from nnunetv2_openvocab.evaluation.metrics import DEFAULT_TOLERANCE_MM
from nnunetv2_openvocab.evaluation.transfer import evaluate_transfer, transfer_markdown
from nnunetv2_openvocab.evaluation.transfer_tables import PAPER_TABLES
from nnunetv2_openvocab.user_errors import exit_on_user_error

EPILOG = """\
example (Table IX: the TotalSegmentator model on FLARE22, converted by nnUNetv2_openvocab_convert flare22):
  nnUNetv2_openvocab_eval_transfer -m $nnUNet_results/Dataset291_TotalSegmentatorV1/TRAINER__PLANS__3d_fullres \\
      -f all -i $nnUNet_raw/Dataset501_FLARE22/imagesTr -ref $nnUNet_raw/Dataset501_FLARE22/labelsTr \\
      -dj $nnUNet_raw/Dataset501_FLARE22/dataset.json -o table_IX --paper-table IX

Each target label maps to a taxonomy structure by its canonical name and is prompted with the taxonomy's canonical
prompt; it is scored when the model's training labels cover that structure (itself, or all its parts: SegTHOR's
heart against TotalSegmentator v1's myocardium and chambers). The others are listed as unmappable with the reason.
Writes transfer_summary.{json,md}, predictions/, metrics/ and, with --paper-table, table_<T>.{md,csv}.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnUNetv2_openvocab_eval_transfer", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Predict another dataset's labels with a trained model (no "
                                                 "fine-tuning) by their canonical prompts and report DSC and NSD "
                                                 "per label; unmappable labels are listed.")
    parser.add_argument("-m", required=True, help="model folder written by nnUNetv2_train")
    parser.add_argument("-i", required=True, help="the target dataset's images (e.g. its imagesTr)")
    parser.add_argument("-ref", required=True, help="the target dataset's label maps <case><file_ending>")
    parser.add_argument("-dj", required=True, help="the target dataset's dataset.json (its labels and prompts)")
    parser.add_argument("-o", required=True, help="output folder")
    parser.add_argument("--paper-table", choices=sorted(PAPER_TABLES),
                        help="also write the paper's table in its layout, the published values beside ours")
    add_prediction_arguments(parser)
    add_grounding_arguments(parser)
    parser.set_defaults(grounding="text")  # the paper's model answers every prompt by its text
    parser.add_argument("--tolerance-mm", type=float, default=DEFAULT_TOLERANCE_MM, help="NSD tolerance (mm)")
    parser.add_argument("-np", type=int, default=default_num_processes, help="evaluation worker processes")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    with exit_on_user_error("nnUNetv2_openvocab_eval_transfer"):
        summary = evaluate_transfer(args.m, args.i, args.ref, args.dj, args.o, parse_folds(args.f), args.chk,
                                    args.step_size, not args.disable_tta, torch.device(args.device), args.grounding,
                                    args.grounding_threshold, args.tolerance_mm, args.np,
                                    not args.disable_progress_bar, args.paper_table)
    print(transfer_markdown(summary))
    for kind, path in summary["output_files"].items():
        print(f"{kind:>9}: {path}")


if __name__ == "__main__":
    main()
