"""``nnUNetv2_openvocab_convert DATASET -i NATIVE_FOLDER -d ID [-np N] [--name NAME]``: one subcommand per dataset.

Writes ``$nnUNet_raw/DatasetXXX_NAME`` (imagesTr/labelsTr, imagesTs/labelsTs where test labels are public,
dataset.json with text prompts, conversion_report.json). Re-running the same command resumes an interrupted
conversion. ``ct_rate`` instead writes a pretraining manifest (``-o manifest.jsonl``). When any case failed
(it is left out and listed in the report) the command exits with status 1 after writing everything else.
"""
from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Optional

from dataset_conversion.converters import (amos22, btcv, btcv_cervix, covid19, ct_rate, flare22, kits23, msd,
                                           segrap2023, segthor, totalsegmentator, totalsegmentator_v1)
from dataset_conversion.case_conversion import REPORT_NAME
from dataset_conversion.dataset_json import dataset_folder
from dataset_conversion.problems import raise_if_cases_failed
from nnunetv2_openvocab.user_errors import exit_on_user_error


TOTALSEGMENTATOR_V1_NAME = "TotalSegmentatorV1"


def convert_totalsegmentator(native_folder: Path, output_folder: Path, num_processes: Optional[int] = None,
                             version: int = 2, split_file: Optional[Path] = None) -> Path:
    """v2 keeps meta.csv's split; v1 follows the paper's protocol (104 classes, five folds, fold 1 = test)."""
    if version == 1:
        return totalsegmentator_v1.convert(native_folder, output_folder, num_processes, split_file)
    if split_file is not None:
        raise ValueError("--split-file applies to --version 1 (the paper's five folds); v2 keeps meta.csv's split.")
    return totalsegmentator.convert(native_folder, output_folder, num_processes)


@dataclass(frozen=True)
class DatasetConverter:
    convert: Callable[..., Path]   # convert(native_folder, output_folder, num_processes, **options)
    default_name: str
    help: str


CONVERTERS: Dict[str, DatasetConverter] = {
    "totalsegmentator": DatasetConverter(convert_totalsegmentator, "TotalSegmentatorV2",
                                         "TotalSegmentator v2 (subject folders with per-structure masks, meta.csv), "
                                         "or v1 with --version 1 (104 classes, the paper's five folds)"),
    "msd_liver": DatasetConverter(partial(msd.convert, "liver"), "MSDLiver", "MSD Task03 Liver"),
    "msd_lung": DatasetConverter(partial(msd.convert, "lung"), "MSDLung", "MSD Task06 Lung"),
    "msd_pancreas": DatasetConverter(partial(msd.convert, "pancreas"), "MSDPancreas", "MSD Task07 Pancreas"),
    "msd_hepaticvessel": DatasetConverter(partial(msd.convert, "hepaticvessel"), "MSDHepaticVessel",
                                          "MSD Task08 HepaticVessel"),
    "msd_colon": DatasetConverter(partial(msd.convert, "colon"), "MSDColon", "MSD Task10 Colon"),
    "kits23": DatasetConverter(kits23.convert, "KiTS23", "KiTS23 (kidney, tumour and cyst as overlapping regions)"),
    "btcv": DatasetConverter(btcv.convert, "BTCV", "BTCV abdomen (13 organs)"),
    "btcv_cervix": DatasetConverter(btcv_cervix.convert, "BTCVCervix", "BTCV-Cervix (4 pelvic organs)"),
    "amos22": DatasetConverter(amos22.convert, "AMOS22CT", "AMOS22, CT cases only (15 organs)"),
    "flare22": DatasetConverter(flare22.convert, "FLARE22", "FLARE22 (13 abdominal organs)"),
    "segthor": DatasetConverter(segthor.convert, "SegTHOR", "SegTHOR (4 thoracic organs)"),
    "segrap2023": DatasetConverter(segrap2023.convert, "SegRap2023", "SegRap2023 (45 OARs, or 2 GTVs with --task gtv)"),
    "covid19": DatasetConverter(covid19.convert, "COVID19Lesion", "COVID-19-20 lung lesion segmentation"),
}


def nnunet_raw_folder() -> Path:
    raw = os.environ.get("nnUNet_raw")
    if not raw:
        raise ValueError("nnUNet_raw is not set; export nnUNet_raw=/path/to/nnUNet_raw or pass -o.")
    return Path(raw)


def convert_to_nnunet(dataset: str, native_folder: Path, dataset_id: int, name: Optional[str] = None,
                      num_processes: Optional[int] = None, output_root: Optional[Path] = None, **options) -> Path:
    """Plain-function form of the command (for notebooks); returns the written dataset.json path."""
    if dataset not in CONVERTERS:
        raise ValueError(f"Unknown dataset {dataset!r}; choose one of {', '.join(CONVERTERS)}.")
    converter = CONVERTERS[dataset]
    folder = dataset_folder(Path(output_root) if output_root else nnunet_raw_folder(), dataset_id,
                            name or converter.default_name)
    return converter.convert(Path(native_folder), folder, num_processes, **options)


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
