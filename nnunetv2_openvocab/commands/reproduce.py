"""``nnUNetv2_openvocab_reproduce``: a paper table's experiment as commands (nnunetv2_openvocab/paper_tables.py).

Today: Table VIII at paper scale, written as a shell script (a section per row and stage) for a lab's scheduler;
``--dry-run`` prints it instead. Smoke-scale runs and the other tables are not implemented yet.
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from nnunetv2_openvocab.paper_tables import paper_scale_script, write_paper_scale_script
from nnunetv2_openvocab.user_errors import exit_on_user_error

EPILOG = """\
example:
  nnUNetv2_openvocab_reproduce --table VIII --scale paper --out reproduce --dry-run   # print the commands
  nnUNetv2_openvocab_reproduce --table VIII --scale paper --out reproduce             # reproduce/table_VIII_paper.sh
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnUNetv2_openvocab_reproduce", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Write the commands of a paper table's experiment, each row "
                                                 "differing from its comparison row in the paper's factor only.")
    parser.add_argument("--table", required=True, choices=("VIII",), help="paper table")
    parser.add_argument("--scale", required=True, choices=("paper",),
                        help="paper: shell commands (torchrun, nnUNetv2_train) for a lab's own scheduler")
    parser.add_argument("--out", required=True, help="output folder for table_<TABLE>_paper.sh")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, write nothing")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    with exit_on_user_error("nnUNetv2_openvocab_reproduce"):
        if args.dry_run:
            print(paper_scale_script(), end="")
        else:
            print(f"wrote {write_paper_scale_script(args.out, args.table)}")


if __name__ == "__main__":
    main()
