"""SegRap2023 (nasopharyngeal carcinoma radiotherapy planning; challenge data terms): 45 OARs or 2 GTVs.

UNCERTAIN layout (from the organisers' tutorial code, HiLab-git/SegRap2023, not from a download)::

    SegRap2023_Training_Set_120cases/segrap_0000/image.nii.gz            non-contrast CT (used)
    SegRap2023_Training_Set_120cases/segrap_0000/image_contrast.nii.gz   contrast CT (not used: one CT channel)
    SegRap2023_Training_Set_120cases_OneHot_Labels/Task001/segrap_0000.nii.gz   OARs, 54 atomic values
    SegRap2023_Training_Set_120cases_OneHot_Labels/Task002/segrap_0000.nii.gz   GTVs: 1 GTVp, 2 GTVnd

The 45 OARs overlap (brain contains brainstem, eye contains lens, ...); they are nnU-Net regions over the atomic
values exactly as in the organisers' ``segrap_subset_task001`` table (data/label_tables/segrap2023_oar.json).
OARs and GTVs overlap too and come as separate maps, hence two tasks converted into two datasets.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from dataset_conversion.converters.layout_dataset import convert_by_layout

TABLE_KEYS = {"oar": "segrap2023_oar", "gtv": "segrap2023_gtv"}


def convert(native_folder: Path, output_folder: Path, num_processes: Optional[int] = None, task: str = "oar") -> Path:
    if task not in TABLE_KEYS:
        raise ValueError(f"Unknown SegRap2023 task {task!r}; choose 'oar' (Task001) or 'gtv' (Task002).")
    return convert_by_layout(TABLE_KEYS[task], native_folder, output_folder, num_processes)
