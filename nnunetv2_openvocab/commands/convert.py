"""``nnUNetv2_openvocab_convert DATASET -i NATIVE_FOLDER -d ID [-np N] [--name NAME]``: one subcommand per dataset.

Writes ``$nnUNet_raw/DatasetXXX_NAME`` (imagesTr/labelsTr, imagesTs/labelsTs where test labels are public,
dataset.json with text prompts, conversion_report.json). Re-running the same command resumes an interrupted
conversion. ``ct_rate`` instead writes a pretraining manifest (``-o manifest.jsonl``). When any case failed
(it is left out and listed in the report) the command exits with status 1 after writing everything else.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import List, Optional

from dataset_conversion.case_conversion import REPORT_NAME
from dataset_conversion.converters import ct_rate, segrap2023
from dataset_conversion.problems import raise_if_cases_failed
from dataset_conversion.registry import CONVERTERS, TOTALSEGMENTATOR_V1_NAME, convert_to_nnunet
from nnunetv2_openvocab.user_errors import exit_on_user_error


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", dest="native_folder", type=Path, required=True,
                        help="the dataset as downloaded and extracted (layout: see the converter's docstring)")
    parser.add_argument("-np", dest="num_processes", type=int, default=None,
                        help="worker processes (default: all cores)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log per-step details")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnUNetv2_openvocab_convert",
        description="Convert a public CT dataset from its native layout into a prompt-ready nnU-Net raw dataset.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example:\n  export nnUNet_raw=/data/nnUNet_raw\n"
               "  nnUNetv2_openvocab_convert kits23 -i /data/kits23/dataset -d 220 -np 8\n"
               "  -> /data/nnUNet_raw/Dataset220_KiTS23 (re-run the same command to resume)\n"
               "  nnUNetv2_openvocab_convert ct_rate -i /data/CT-RATE/dataset -o /data/ct_rate_train.jsonl")
    subparsers = parser.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    for key, converter in CONVERTERS.items():
        sub = subparsers.add_parser(key, help=converter.help, description=converter.help)
        _add_common_arguments(sub)
        sub.add_argument("-d", dest="dataset_id", type=int, required=True, help="nnU-Net dataset id (1-999)")
        sub.add_argument("--name", default=converter.default_name,
                         help=f"dataset name after DatasetXXX_ (default {converter.default_name})")
        sub.add_argument("-o", "--output-root", type=Path, default=None, help="nnUNet_raw folder (default $nnUNet_raw)")
        if key == "totalsegmentator":
            sub.add_argument("--version", type=int, choices=(1, 2), default=2,
                             help="2: v2 release, meta.csv split (default); 1: v1 release with v1's 104-class table "
                                  "and the paper's split (five folds, fold 1 = test; recorded in folds.json), "
                                  f"default name {TOTALSEGMENTATOR_V1_NAME}")
            sub.add_argument("--split-file", type=Path, default=None,
                             help="--version 1: official split (nnU-Net splits_final.json, or a folds.json)")
        if key == "amos22":
            sub.add_argument("--validation-into-training", action="store_true",
                             help="put the labelled validation cases into imagesTr instead of imagesTs/labelsTs")
        if key == "segrap2023":
            sub.add_argument("--task", choices=sorted(segrap2023.TABLE_KEYS), default="oar",
                             help="oar: Task001 organs at risk (default); gtv: Task002 gross tumour volumes")
    ct_rate_parser = subparsers.add_parser("ct_rate", help="CT-RATE reports -> pretraining manifest (JSON lines)",
                                           description=ct_rate.__doc__,
                                           formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common_arguments(ct_rate_parser)
    ct_rate_parser.add_argument("-o", dest="manifest", type=Path, required=True, help="manifest .jsonl to write")
    ct_rate_parser.add_argument("--split", choices=sorted(ct_rate.SPLITS), default="train")
    ct_rate_parser.add_argument("--check-volumes", action="store_true",
                                help="read every volume and check that it is a 3D CT (slow)")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    with exit_on_user_error("nnUNetv2_openvocab_convert", traceback=args.verbose):
        _convert(args)


def _convert(args: argparse.Namespace) -> None:
    if args.dataset == "ct_rate":
        path = ct_rate.convert(args.native_folder, args.manifest, args.split, args.check_volumes, args.num_processes)
        print(f"Manifest written: {path}")
        raise_if_cases_failed(ct_rate.report_path(path))
        return
    options = {}
    if args.dataset == "totalsegmentator":
        options.update(version=args.version, split_file=args.split_file)
        if args.version == 1 and args.name == CONVERTERS["totalsegmentator"].default_name:
            args.name = TOTALSEGMENTATOR_V1_NAME
    if args.dataset == "amos22":
        options["validation_into_training"] = args.validation_into_training
    if args.dataset == "segrap2023":
        options["task"] = args.task
    path = convert_to_nnunet(args.dataset, args.native_folder, args.dataset_id, args.name, args.num_processes,
                             args.output_root, **options)
    print(f"Dataset written: {path.parent}")
    raise_if_cases_failed(path.parent / REPORT_NAME)


if __name__ == "__main__":
    main()
