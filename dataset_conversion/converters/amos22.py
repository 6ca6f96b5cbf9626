"""AMOS22 (CC BY 4.0), CT part only: 15 abdominal organs.

Native layout (post-challenge Zenodo release, folder with dataset.json)::

    imagesTr/amos_0001.nii.gz + labelsTr/amos_0001.nii.gz    training
    imagesVa/amos_0008.nii.gz + labelsVa/amos_0008.nii.gz    validation (labels public)
    imagesTs/                                                 no public labels: not converted

Case ids <= 500 are CT; larger ids are MRI and are left out (logged). The validation cases keep their official role
as imagesTs/labelsTs; ``validation_into_training=True`` moves them into imagesTr (as nnU-Net's own AMOS converter
and 5-fold cross-validation do). Label 15 is 'prostate/uterus' (sex-dependent), kept as one label.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from dataset_conversion.case_conversion import TEST, TRAIN
from dataset_conversion.converters.layout_dataset import convert_by_layout
from dataset_conversion.label_tables import load_label_table

logger = logging.getLogger(__name__)

TABLE_KEY = "amos22"


def convert(native_folder: Path, output_folder: Path, num_processes: Optional[int] = None,
            validation_into_training: bool = False) -> Path:
    max_ct_id = int(load_label_table(TABLE_KEY).layout["max_ct_id"])
    skipped = []

    def is_ct(native_id: str) -> bool:
        if native_id.isdigit() and int(native_id) <= max_ct_id:
            return True
        skipped.append(native_id)
        return False

    path = convert_by_layout(TABLE_KEY, native_folder, output_folder, num_processes, keep_id=is_ct,
                             split_override={TEST: TRAIN} if validation_into_training else None)
    if skipped:
        logger.info("Left out %d cases that are not CT (ids > %d): %s", len(set(skipped)), max_ct_id,
                    ", ".join(sorted(set(skipped))[:10]))
    return path
