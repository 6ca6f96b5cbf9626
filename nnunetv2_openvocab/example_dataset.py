"""Build a small prompt-ready nnU-Net raw dataset from the bundled real CT (demo and tests).

The CT and its TotalSegmentator label map ship in ``nnunetv2_openvocab/data`` (Apache-2.0, see
ATTRIBUTION.md). Cases are axial sub-volumes of that one scan, so the dataset proves the pipeline learns
real anatomy; it is no benchmark of generalisation to other patients.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from nnunetv2_openvocab.atomic_files import atomic_path, write_json_atomic

DATA_FOLDER = Path(__file__).parent / "data"
EXAMPLE_CT = DATA_FOLDER / "example_ct.nii.gz"
EXAMPLE_SEGMENTATION = DATA_FOLDER / "example_ct_seg61.nii.gz"
CLASS_MAP = DATA_FOLDER / "class_map_total.json"
EXAMPLE_PROMPTS = DATA_FOLDER / "example_prompts.json"

DEFAULT_STRUCTURES = ("liver", "spleen", "kidney_left", "kidney_right", "aorta", "vertebrae_L3")
# (first, last) axial slice of each case; the full scan plus two overlapping halves
DEFAULT_CASE_SLABS = ((0, None), (0, 80), (32, None))


def example_prompts() -> Dict[str, list]:
    prompts = json.loads(EXAMPLE_PROMPTS.read_text(encoding="utf-8"))
    prompts.pop("_comment", None)
    return prompts


def _write_atomically(image: sitk.Image, path: Path) -> None:
    with atomic_path(path) as temporary:
        sitk.WriteImage(image, str(temporary), True)


def remap_labels(segmentation: np.ndarray, structures: Sequence[str]) -> np.ndarray:
    """TotalSegmentator ids -> 1..len(structures) in the given order; everything else background."""
    name_to_id = {name: int(i) for i, name in json.loads(CLASS_MAP.read_text(encoding="utf-8")).items()}
    unknown = [s for s in structures if s not in name_to_id]
    if unknown:
        raise ValueError(f"Unknown TotalSegmentator structure(s) {unknown}; see {CLASS_MAP} for names.")
    lookup = np.zeros(max(name_to_id.values()) + 1, dtype=np.uint8)
    for new_value, name in enumerate(structures, start=1):
        lookup[name_to_id[name]] = new_value
    return lookup[segmentation]


def build_example_dataset(raw_root: str | Path, dataset_id: int = 990, name: str = "OpenVocabExample",
                          structures: Sequence[str] = DEFAULT_STRUCTURES,
                          case_slabs: Sequence[Tuple[int, Optional[int]]] = DEFAULT_CASE_SLABS,
                          annotated_labels: Optional[Dict[str, list]] = None,
                          prompts: Optional[Dict[str, list]] = None) -> Path:
    """Write ``DatasetXXX_name`` (imagesTr, labelsTr, dataset.json with text_prompts) under ``raw_root``."""
    prompts = prompts or example_prompts()
    missing = [s for s in structures if s not in prompts]
    if missing:
        raise ValueError(f"No prompts for {missing}; add them to {EXAMPLE_PROMPTS} or pass prompts=.")
    folder = Path(raw_root) / f"Dataset{dataset_id:03d}_{name}"
    (folder / "imagesTr").mkdir(parents=True, exist_ok=True)
    (folder / "labelsTr").mkdir(parents=True, exist_ok=True)
    ct = sitk.ReadImage(str(EXAMPLE_CT))
    labels = remap_labels(sitk.GetArrayFromImage(sitk.ReadImage(str(EXAMPLE_SEGMENTATION))), structures)
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(ct)
    for index, (first, last) in enumerate(case_slabs):
        case = f"example_{index:03d}"
        slab = slice(first, last)
        # sitk indexes (x, y, z): the axial slab is the last axis
        _write_atomically(ct[:, :, slab], folder / "imagesTr" / f"{case}_0000.nii.gz")
        _write_atomically(label_image[:, :, slab], folder / "labelsTr" / f"{case}.nii.gz")
    dataset_json = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, **{s: i for i, s in enumerate(structures, start=1)}},
        "numTraining": len(case_slabs),
        "file_ending": ".nii.gz",
        "text_prompts": {s: list(prompts[s]) for s in structures},
        "source": "TotalSegmentator example CT (Apache-2.0), labels are TotalSegmentator model output",
    }
    if annotated_labels:
        dataset_json["annotated_labels"] = annotated_labels
    write_json_atomic(folder / "dataset.json", dataset_json)
    return folder
