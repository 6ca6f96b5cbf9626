"""BTCV-Cervix (MICCAI 2015 Multi-Atlas Labeling Beyond the Cranial Vault, cervix; Synapse terms).

UNCERTAIN (not confirmed from public documentation): native layout assumed to be the extracted RawData folder with::

    Training/img/0507688-Image.nii.gz
    Training/label/0507688-Mask.nii.gz   1 bladder, 2 uterus, 3 rectum, 4 small bowel

Both the file names and the label order live in data/label_tables/btcv_cervix.json; correct them there.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from dataset_conversion.converters.layout_dataset import convert_by_layout

TABLE_KEY = "btcv_cervix"


def convert(native_folder: Path, output_folder: Path, num_processes: Optional[int] = None) -> Path:
    return convert_by_layout(TABLE_KEY, native_folder, output_folder, num_processes)
