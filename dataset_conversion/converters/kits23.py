"""KiTS23 (kidney tumour segmentation challenge 2023; see data/label_tables/kits23.json for licence).

Native layout (the 'dataset' folder of the kits23 repository after its download script)::

    case_00000/imaging.nii.gz
    case_00000/segmentation.nii.gz    0 background, 1 kidney, 2 tumor, 3 cyst

All 489 cases have labels and there are no public test labels, so all go to imagesTr. Overlapping nnU-Net regions
follow KiTS's hierarchical evaluation classes: kidney = 1+2+3, kidney_mass = 2+3, kidney_tumor = 2, kidney_cyst = 3.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from dataset_conversion.converters.layout_dataset import convert_by_layout

TABLE_KEY = "kits23"


def convert(native_folder: Path, output_folder: Path, num_processes: Optional[int] = None) -> Path:
    return convert_by_layout(TABLE_KEY, native_folder, output_folder, num_processes)
