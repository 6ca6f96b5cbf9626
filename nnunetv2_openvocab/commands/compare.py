"""``nnUNetv2_openvocab_compare``: paired comparison of two evaluations (t-test and Wilcoxon over cases)."""
from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence

from nnunetv2_openvocab.evaluation.compare import compare_evaluations
from nnunetv2_openvocab.evaluation.compare_writers import markdown_report, write_comparison
from nnunetv2_openvocab.output_folder import check_output_folder
from nnunetv2_openvocab.user_errors import exit_on_user_error

EPILOG = """\
example:
  nnUNetv2_openvocab_evaluate -ref labelsTs -pred pred_nnunet -dj dataset.json -o eval_nnunet
  nnUNetv2_openvocab_evaluate -ref labelsTs -pred pred_openvocab -dj dataset.json -o eval_openvocab
  nnUNetv2_openvocab_compare eval_nnunet eval_openvocab -o compare_nnunet_vs_openvocab

Differences are B - A (positive: the second evaluation scores higher), per prompt, per Table II category
(TotalSegmentator labels) and over all prompts, for DSC and NSD, with the paired t-test (scipy.stats.ttest_rel)
and the Wilcoxon signed-rank test (scipy.stats.wilcoxon) over cases, as in the paper's Tables V and XI.
Both evaluations must cover the same cases and prompts at the same NSD tolerance.
Writes comparison.csv, comparison.json, comparison.md and comparison.png into -o.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnUNetv2_openvocab_compare",
        description="Compare two nnUNetv2_openvocab_evaluate output folders case by case.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("evaluation_a", metavar="EVAL_A", help="output folder of the baseline evaluation (A)")
    parser.add_argument("evaluation_b", metavar="EVAL_B", help="output folder of the evaluation compared with it (B)")
    parser.add_argument("-o", required=True, help="output folder for the CSV, JSON, markdown and PNG")
    parser.add_argument("--alpha", type=float, default=0.05,
                        help="significance level marked in the table and plot (default 0.05)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.alpha < 1:
        parser.error(f"--alpha must lie between 0 and 1, got {args.alpha}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with exit_on_user_error(parser.prog):
        comparison = compare_evaluations(args.evaluation_a, args.evaluation_b)
        paths = write_comparison(comparison, check_output_folder(args.o), args.alpha)
    print(markdown_report(comparison, args.alpha))
    for kind, path in paths.items():
        print(f"{kind:>9}: {path}")
