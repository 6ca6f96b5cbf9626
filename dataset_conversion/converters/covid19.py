"""COVID-19-20 lung CT lesion segmentation challenge (199 labelled CTs; see data/label_tables/covid19.json).

UNCERTAIN (from the challenge release, not re-checked against a download): pass the COVID-19-20_v2 folder with::

    Train/volume-covid19-A-0003_ct.nii.gz
    Train/volume-covid19-A-0003_seg.nii.gz    1 lesion (ground-glass opacities and consolidation)

Validation labels are not public and are not converted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from dataset_conversion.converters.layout_dataset import convert_by_layout

TABLE_KEY = "covid19"


def convert(native_folder: Path, output_folder: Path, num_processes: Optional[int] = None) -> Path:
    return convert_by_layout(TABLE_KEY, native_folder, output_folder, num_processes)
