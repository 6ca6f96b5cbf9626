"""TotalSegmentator v2 (Wasserthal et al.; CC BY 4.0): one folder per subject with per-structure masks.

Native layout (v2 Zenodo release, 1228 subjects)::

    <native>/meta.csv                              ';'-separated, columns image_id, ..., split (train/val/test)
    <native>/s0000/ct.nii.gz
    <native>/s0000/segmentations/<class>.nii.gz    117 binary masks named as in TotalSegmentator's class map

The masks are painted into one label map with TotalSegmentator's own class ids
(data/label_tables/totalsegmentator_v2.json). The official split is kept: 'test' subjects go to imagesTs/labelsTs,
'train' and 'val' to imagesTr/labelsTr. Without meta.csv every subject folder is a training case (with a warning).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional

import pandas as pd

from dataset_conversion.case_conversion import TEST, TRAIN, Case
from dataset_conversion.converter import convert_dataset
from dataset_conversion.discovery import ID, case_identifier
from dataset_conversion.label_tables import LabelTable, load_label_table

logger = logging.getLogger(__name__)

TABLE_KEY = "totalsegmentator_v2"


def subject_folders(native_folder: Path) -> List[str]:
    return sorted(p.name for p in native_folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_splits(native_folder: Path, table: LabelTable) -> Dict[str, str]:
    """{subject id: TRAIN or TEST} from meta.csv, or every subject folder as TRAIN when meta.csv is absent."""
    meta_path = native_folder / table.layout["meta_file"]
    if not meta_path.is_file():
        subjects = subject_folders(native_folder)
        logger.warning("%s not found: converting all %d subject folders as training cases.", meta_path, len(subjects))
        return {s: TRAIN for s in subjects}
    meta = pd.read_csv(meta_path, sep=None, engine="python", dtype=str)  # sniffs ';' (v2) or ','
    for column in ("image_id", "split"):
        if column not in meta.columns:
            raise ValueError(f"{meta_path} has no {column!r} column (found {list(meta.columns)}); expected the "
                             f"TotalSegmentator meta.csv with image_id and split.")
    test_values = set(table.layout["test_splits"])
    return {row.image_id: TEST if row.split in test_values else TRAIN for row in meta.itertuples()}


def require_native_folder(native_folder: Path) -> None:
    if not native_folder.is_dir():
        raise FileNotFoundError(f"Native folder {native_folder} does not exist; pass the extracted TotalSegmentator "
                                f"folder (s0000/ ... subject folders).")


def subject_cases(native_folder: Path, table: LabelTable, splits: Dict[str, str]) -> List[Case]:
    """One case per subject of ``splits`` ({subject id: TRAIN or TEST}) with the table's per-structure masks."""
    mask_pattern = table.layout["structure_masks"]
    cases = []
    for subject, split in sorted(splits.items()):
        masks = tuple((name, native_folder / mask_pattern.replace(ID, subject).replace("{structure}", name))
                      for name in table.labels)
        cases.append(Case(case_identifier(table.case_prefix, subject), split,
                          native_folder / table.layout["image"].replace(ID, subject), structure_masks=masks))
    return cases


def discover_cases(native_folder: Path, table: LabelTable) -> List[Case]:
    native_folder = Path(native_folder)
    require_native_folder(native_folder)
    return subject_cases(native_folder, table, read_splits(native_folder, table))


def convert(native_folder: Path, output_folder: Path, num_processes: Optional[int] = None) -> Path:
    table = load_label_table(TABLE_KEY)
    return convert_dataset(table, discover_cases(Path(native_folder), table), Path(output_folder), num_processes)
