"""SegTHOR (thoracic organs at risk; challenge data terms).

Native layout (pass the 'train' folder)::

    Patient_01/Patient_01.nii.gz
    Patient_01/GT.nii.gz          1 esophagus, 2 heart, 3 trachea, 4 aorta

40 labelled patients; the 20 test patients have no public labels and are not converted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from dataset_conversion.converters.layout_dataset import convert_by_layout

TABLE_KEY = "segthor"


def convert(native_folder: Path, output_folder: Path, num_processes: Optional[int] = None) -> Path:
    return convert_by_layout(TABLE_KEY, native_folder, output_folder, num_processes)
