"""BTCV abdomen (MICCAI 2015 Multi-Atlas Labeling Beyond the Cranial Vault; Synapse terms, no redistribution).

Native layout (the extracted RawData folder)::

    Training/img/img0001.nii.gz
    Training/label/label0001.nii.gz   13 organs: 1 spleen, 2 right kidney, 3 left kidney, 4 gallbladder,
                                      5 esophagus, 6 liver, 7 stomach, 8 aorta, 9 IVC, 10 portal+splenic vein,
                                      11 pancreas, 12 right adrenal gland, 13 left adrenal gland
    Testing/img/                      no public labels: not converted

Label order from the challenge wiki; data/label_tables/btcv.json is the place to correct it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from dataset_conversion.converters.layout_dataset import convert_by_layout

TABLE_KEY = "btcv"


def convert(native_folder: Path, output_folder: Path, num_processes: Optional[int] = None) -> Path:
    return convert_by_layout(TABLE_KEY, native_folder, output_folder, num_processes)
