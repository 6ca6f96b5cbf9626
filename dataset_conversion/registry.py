"""The converters by command-line name, and the plain-function form of ``nnUNetv2_openvocab_convert``."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Dict, Optional

from dataset_conversion.converters import (amos22, btcv, btcv_cervix, covid19, flare22, kits23, msd, segrap2023,
                                           segthor, totalsegmentator, totalsegmentator_v1)
from dataset_conversion.dataset_json import dataset_folder, nnunet_raw_folder

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


def convert_to_nnunet(dataset: str, native_folder: Path, dataset_id: int, name: Optional[str] = None,
                      num_processes: Optional[int] = None, output_root: Optional[Path] = None, **options) -> Path:
    """Plain-function form of the command (for notebooks); returns the written dataset.json path."""
    if dataset not in CONVERTERS:
        raise ValueError(f"Unknown dataset {dataset!r}; choose one of {', '.join(CONVERTERS)}.")
    converter = CONVERTERS[dataset]
    folder = dataset_folder(Path(output_root) if output_root else nnunet_raw_folder(), dataset_id,
                            name or converter.default_name)
    return converter.convert(Path(native_folder), folder, num_processes, **options)
