"""Medical Segmentation Decathlon CT tasks 03 Liver, 06 Lung, 07 Pancreas, 08 HepaticVessel, 10 Colon (CC BY-SA 4.0).

Native layout (as extracted from the MSD tar files, e.g. Task03_Liver/)::

    dataset.json                 MSD's own; its 'modality' must be {"0": "CT"}
    imagesTr/liver_0.nii.gz      3D CT
    labelsTr/liver_0.nii.gz      0 background, 1 organ (or vessel / tumour), 2 tumour
    imagesTs/                    no public labels: not converted

macOS '._*' files shipped in some tarballs are ignored. Label tables: data/label_tables/msd_<task>.json; the liver
and pancreas labels are nnU-Net regions (organ = organ + tumour), so the 'liver' prompt means the whole liver.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from dataset_conversion.converters.layout_dataset import convert_by_layout

TABLE_KEYS = {"liver": "msd_liver", "lung": "msd_lung", "pancreas": "msd_pancreas",
              "hepaticvessel": "msd_hepaticvessel", "colon": "msd_colon"}


def check_native_modality(native_folder: Path) -> None:
    """MSD's dataset.json names the modality; refuse a non-CT task before converting anything."""
    path = Path(native_folder) / "dataset.json"
    if not path.is_file():
        return  # per-case intensity checks still catch non-CT images
    modality = json.loads(path.read_text(encoding="utf-8")).get("modality", {})
    if set(modality.values()) != {"CT"}:
        raise ValueError(f"{path} declares modality {modality}; only the CT tasks (03, 06, 07, 08, 10) can be "
                         f"converted.")


def convert(task: str, native_folder: Path, output_folder: Path, num_processes: Optional[int] = None) -> Path:
    if task not in TABLE_KEYS:
        raise ValueError(f"Unknown MSD task {task!r}; choose one of {sorted(TABLE_KEYS)}.")
    check_native_modality(native_folder)
    return convert_by_layout(TABLE_KEYS[task], native_folder, output_folder, num_processes)
