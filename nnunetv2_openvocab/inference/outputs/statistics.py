"""Per-prompt volume and mean intensity of a predicted mask, for ``--statistics``.

``<case>_statistics.json``::

    {"case": "ct_001", "voxel_volume_ml": 0.027, "intensity_unit": "HU (input values as stored)",
     "prompts": {"liver": {"voxels": 9500, "volume_ml": 256.5, "mean_hu": 58.1}, ...}}

``mean_hu`` is the mean of the input image (first channel, values as read: Hounsfield units for CT, rescale
slope/intercept applied for DICOM) inside the mask, and null for an empty mask. Prediction adds each prompt's
presence (``max_probability``, ``mean_probability``, ``status`` present/absent; see presence.py) and, for a
prompt that names a side, ``side_check`` (its side, result passed/trimmed/emptied/not checked, voxel counts
and why; see patient_side.py).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np


def voxel_volume_ml(spacing_mm: Sequence[float]) -> float:
    return float(np.prod(spacing_mm)) / 1000.0


def mask_statistics(mask: np.ndarray, image: np.ndarray, spacing_mm: Sequence[float]) -> Dict[str, Optional[float]]:
    """``mask`` and ``image`` share the array layout; ``spacing_mm`` is per array axis."""
    inside = mask.astype(bool, copy=False)
    voxels = int(inside.sum())
    mean = float(image[inside].mean(dtype=np.float64)) if voxels else None
    return {"voxels": voxels, "volume_ml": voxels * voxel_volume_ml(spacing_mm), "mean_hu": mean}


def statistics_document(case_id: str, spacing_mm: Sequence[float], per_prompt: Dict[str, Dict]) -> Dict:
    return {"case": case_id, "voxel_volume_ml": voxel_volume_ml(spacing_mm),
            "intensity_unit": "HU (input values as stored)", "prompts": per_prompt}
