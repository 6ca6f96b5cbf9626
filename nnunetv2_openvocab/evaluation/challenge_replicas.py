"""Replicas of FLARE22 and SegTHOR made from the bundled CT, laid out as those challenges ship their training data,
for the smoke-scale Tables IX/X (``nnUNetv2_openvocab_convert flare22|segthor`` then reads them like a download).

The label maps are the bundled CT's TotalSegmentator labels renumbered to the challenge's label values (FLARE22:
1 liver ... 13 left kidney; SegTHOR: 1 esophagus, 2 heart, 3 trachea, 4 aorta); a challenge label the scan does not
show (the bundled CT is an abdomen: no heart, trachea or oesophagus) stays empty. The label values are the
converters' label tables, so replica and converter cannot disagree.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple

import SimpleITK as sitk

from nnunetv2_openvocab.atomic_files import atomic_path
from nnunetv2_openvocab.example_dataset import EXAMPLE_CT, EXAMPLE_SEGMENTATION, remap_labels

# (image, label) paths of case 1 under the native folder, and the challenge's label values (its label table)
LAYOUTS: Dict[str, Tuple[str, str]] = {
    "flare22": ("images/FLARE22_Tr_0001_0000.nii.gz", "labels/FLARE22_Tr_0001.nii.gz"),
    "segthor": ("Patient_01/Patient_01.nii.gz", "Patient_01/GT.nii.gz"),
}
CHALLENGE_LABELS: Dict[str, Tuple[str, ...]] = {  # names in label-value order 1, 2, ...
    "flare22": ("liver", "kidney_right", "spleen", "pancreas", "aorta", "inferior_vena_cava", "adrenal_gland_right",
                "adrenal_gland_left", "gallbladder", "esophagus", "stomach", "duodenum", "kidney_left"),
    "segthor": ("esophagus", "heart", "trachea", "aorta"),
}
DEFAULT_SLAB = (64, 112)  # axial slices of the bundled CT: the upper abdomen (liver, kidneys, spleen, aorta)


def _write(image: sitk.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        sitk.WriteImage(image, str(temporary), True)


def write_challenge_replica(challenge: str, native_folder: Path,
                            slab: Tuple[int, Optional[int]] = DEFAULT_SLAB) -> Path:
    """Write one case of ``challenge`` (flare22 or segthor) under ``native_folder``; return the folder."""
    if challenge not in LAYOUTS:
        raise ValueError(f"No replica layout for {challenge!r}; expected one of {sorted(LAYOUTS)}.")
    ct = sitk.ReadImage(str(EXAMPLE_CT))
    segmentation = sitk.ReadImage(str(EXAMPLE_SEGMENTATION))
    labels = sitk.GetImageFromArray(remap_labels(sitk.GetArrayFromImage(segmentation), CHALLENGE_LABELS[challenge]))
    labels.CopyInformation(ct)
    image_path, label_path = LAYOUTS[challenge]
    axial = slice(*slab)  # sitk indexes (x, y, z)
    _write(ct[:, :, axial], Path(native_folder) / image_path)
    _write(labels[:, :, axial], Path(native_folder) / label_path)
    return Path(native_folder)
