"""FLARE22 (abdominal organ segmentation challenge 2022; see data/label_tables/flare22.json for licence).

UNCERTAIN (from the challenge release, not re-checked against a download): pass the FLARE22Train folder with::

    images/FLARE22_Tr_0001_0000.nii.gz
    labels/FLARE22_Tr_0001.nii.gz      1 liver, 2 right kidney, 3 spleen, 4 pancreas, 5 aorta, 6 IVC,
                                       7 right adrenal gland, 8 left adrenal gland, 9 gallbladder, 10 esophagus,
                                       11 stomach, 12 duodenum, 13 left kidney

The 50 labelled cases are the ones the paper uses for generalisation; unlabelled cases are not converted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from dataset_conversion.converters.layout_dataset import convert_by_layout

TABLE_KEY = "flare22"


def convert(native_folder: Path, output_folder: Path, num_processes: Optional[int] = None) -> Path:
    return convert_by_layout(TABLE_KEY, native_folder, output_folder, num_processes)
