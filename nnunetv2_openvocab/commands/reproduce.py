"""``nnUNetv2_openvocab_reproduce``: a paper table's experiment (nnunetv2_openvocab/reproduction/, paper_tables.py).

``--scale smoke`` runs the real commands on the bundled CT (MiniLM, tiny STU-Net, ``*_smoke`` trainers), each step
skipped when its result exists, and writes the table in the paper's layout beside the published values;
``--scale paper`` writes the same commands at paper scale as a shell script for a lab's scheduler.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional, Sequence

from nnunetv2_openvocab.reproduction.external_tables import EXTERNAL_TABLES
from nnunetv2_openvocab.reproduction.runner import reproduce
from nnunetv2_openvocab.reproduction.tables import TABLES
from nnunetv2_openvocab.user_errors import exit_on_user_error

EPILOG = """\
examples:
  # Table VIII's six rows on the bundled CT, 2 CPU cores (about 30 minutes; rerun the same line to resume)
  nnUNetv2_openvocab_reproduce --table VIII --scale smoke --out reproduce \\
      --reports ../shared/data/ct_rate_reports/train.csv
  nnUNetv2_openvocab_reproduce --table VIII --rows 1,6 --scale smoke --out reproduce --dry-run  # list the steps
  nnUNetv2_openvocab_reproduce --table II --scale smoke --out reproduce    # row 6's run only (also VI, VII)
  nnUNetv2_openvocab_reproduce --table IX --scale smoke --out reproduce    # row 6's model on FLARE22's labels (X: SegTHOR)
  nnUNetv2_openvocab_reproduce --table V --scale smoke --out reproduce     # stock nnU-Net vs ours, 2 folds
  nnUNetv2_openvocab_reproduce --table VIII --scale paper --out reproduce --dry-run   # print the paper commands
  nnUNetv2_openvocab_reproduce --table VIII --scale paper --out reproduce             # reproduce/table_VIII_paper.sh
Smoke outputs in --out: table_<T>_smoke.md/.csv (and .png for VIII), table_<T>_paper.sh, T8_<row>/ (predictions,
evaluation), nnU-Net's folders, logs/.
"""


def row_numbers(text: str) -> List[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rows {text!r}: give row numbers separated by commas, e.g. 1,3,6")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnUNetv2_openvocab_reproduce", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Run (smoke) or write (paper) a paper table's experiment, each "
                                                 "Table VIII row differing from its comparison row in the paper's "
                                                 "factor only.")
    parser.add_argument("--table", required=True, choices=(*TABLES, *EXTERNAL_TABLES), help="paper table")
    parser.add_argument("--rows", type=row_numbers, help="Table VIII rows, e.g. 1,3,6 (default: all)")
    parser.add_argument("--scale", required=True, choices=("smoke", "paper"),
                        help="smoke: run on the bundled CT on CPU; paper: shell commands for a lab's scheduler")
    parser.add_argument("--out", required=True, type=Path, help="run folder (smoke; resumes) or script folder")
    parser.add_argument("--reports", type=Path,
                        help="CT-RATE reports CSV for the smoke captions (default: "
                             "$OPENVOCAB_SHARED_DATA/ct_rate_reports/train.csv)")
    parser.add_argument("--dry-run", action="store_true",
                        help="paper: print the commands; smoke: list the steps (done / to run); write nothing")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    with exit_on_user_error("nnUNetv2_openvocab_reproduce"):
        outputs = reproduce(args.table, args.rows, args.scale, args.out, args.reports, args.dry_run)
        for name, path in outputs.items():
            print(f"{name}: {path}")


if __name__ == "__main__":
    main()
