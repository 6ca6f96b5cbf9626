"""``nnUNetv2_openvocab_merge -d ID1 ID2 ... -o NEW_ID [--name NAME] [-np N]``: one partially labelled dataset."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import List, Optional, Sequence

from dataset_conversion.convert_entry import nnunet_raw_folder
from dataset_conversion.dataset_json import dataset_folder
from dataset_conversion.merge import DUPLICATE_RULE, REPORT_NAME, merge_datasets
from dataset_conversion.merge_sources import find_dataset_folder
from dataset_conversion.problems import raise_if_cases_failed
from nnunetv2_openvocab.user_errors import exit_on_user_error


def merge_by_ids(dataset_ids: Sequence[int], new_id: int, name: str = "Merged", num_processes: Optional[int] = None,
                 raw_root: Optional[Path] = None) -> Path:
    """Plain-function form of the command (for notebooks); returns the merged dataset.json path."""
    if len(set(dataset_ids)) != len(dataset_ids) or new_id in dataset_ids:
        raise ValueError(f"Source ids {list(dataset_ids)} must be distinct and differ from the new id {new_id}.")
    raw_root = Path(raw_root) if raw_root else nnunet_raw_folder()
    sources = [(i, find_dataset_folder(raw_root, i)) for i in dataset_ids]
    return merge_datasets(sources, dataset_folder(raw_root, new_id, name), num_processes)


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
