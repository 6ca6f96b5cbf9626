"""``nnUNetv2_openvocab_merge -d ID1 ID2 ... -o NEW_ID [--name NAME] [-np N]``: one partially labelled dataset."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import List, Optional

from dataset_conversion.merge import DUPLICATE_RULE, REPORT_NAME, merge_by_ids
from dataset_conversion.problems import raise_if_cases_failed
from nnunetv2_openvocab.user_errors import exit_on_user_error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnUNetv2_openvocab_merge",
        description="Merge converted datasets (canonical label names) into one partially labelled nnU-Net dataset "
                    "with harmonised label ids, per-case annotated_labels and duplicate-scan handling. "
                    + DUPLICATE_RULE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example:\n  export nnUNet_raw=/data/nnUNet_raw\n"
               "  nnUNetv2_openvocab_merge -d 501 220 17 -o 600 --name AbdomenMerged -np 8\n"
               "  -> /data/nnUNet_raw/Dataset600_AbdomenMerged (merge_report.json lists duplicates and problems)")
    parser.add_argument("-d", dest="dataset_ids", type=int, nargs="+", required=True,
                        help="source dataset ids, in priority order (earlier wins label conflicts on duplicates)")
    parser.add_argument("-o", dest="new_id", type=int, required=True, help="id of the merged dataset")
    parser.add_argument("--name", default="Merged", help="merged dataset name after DatasetXXX_ (default Merged)")
    parser.add_argument("-np", dest="num_processes", type=int, default=None, help="worker processes (default: all)")
    parser.add_argument("--raw", type=Path, default=None, help="nnUNet_raw folder (default $nnUNet_raw)")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    with exit_on_user_error("nnUNetv2_openvocab_merge"):
        path = merge_by_ids(args.dataset_ids, args.new_id, args.name, args.num_processes, args.raw)
        print(f"Merged dataset written: {path.parent}")
        raise_if_cases_failed(path.parent / REPORT_NAME)


if __name__ == "__main__":
    main()
