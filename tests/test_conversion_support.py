"""Shared helpers for the dataset_conversion tests: tiny native-layout replicas built from real data.

The replicas use the real TotalSegmentator example CT (example_ct_sm.nii.gz, 122x101x30, 3 mm) and its real
label map (example_seg.nii.gz), subsampled by 2 for speed. Labels are remapped to each dataset's label table:
structures that TotalSegmentator also segments keep their real masks (groups such as KiTS 'kidney' the union of
their real parts), lesions become small balls inside their (real) organ, and structures absent from this
abdominal scan (e.g. head-and-neck OARs) borrow the mask of an unused real structure. This module holds no tests itself.
"""
from __future__ import annotations

import json
import os
from unittest import mock
from functools import lru_cache
from multiprocessing.pool import ThreadPool
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

import numpy as np
import pytest
import SimpleITK as sitk

from dataset_conversion.discovery import ID
from dataset_conversion.label_tables import LabelTable
from nnunetv2_openvocab.prompts.taxonomy import load_taxonomy

SHARED_DATA = Path(os.environ.get("OPENVOCAB_SHARED_DATA",
                                  Path(__file__).resolve().parents[1].parent / "shared" / "data"))
TOTALSEG = SHARED_DATA / "totalsegmentator"

requires_shared_data = pytest.mark.skipif(not (TOTALSEG / "example_ct_sm.nii.gz").is_file(),
                                          reason=f"real TotalSegmentator example not found under {TOTALSEG}")

NNUNET_ENV = {"nnUNet_def_n_proc": "2", "nnUNet_n_proc_DA": "2"}


@lru_cache(maxsize=1)
def totalseg_class_map() -> Dict[str, int]:
    raw = json.loads((TOTALSEG / "class_map_total.json").read_text(encoding="utf-8"))
    return {name: int(value) for value, name in raw.items()}


FULL_RESOLUTION = -1  # variant: the example itself, not subsampled


@lru_cache(maxsize=8)
def _example(variant: int) -> Tuple[np.ndarray, np.ndarray, Tuple[float, ...], Tuple[float, ...], Tuple[float, ...]]:
    """(ct zyx, totalseg label zyx, spacing, origin, direction): variants 0-3 are stride-2 subsamplings with
    different offsets (so different voxel content), FULL_RESOLUTION is the real example as shipped."""
    ct = sitk.ReadImage(str(TOTALSEG / "example_ct_sm.nii.gz"))
    seg = sitk.ReadImage(str(TOTALSEG / "example_seg.nii.gz"))
    step = 1 if variant == FULL_RESOLUTION else 2
    offset = (0, 0, 0) if variant == FULL_RESOLUTION else (variant % 2, (variant // 2) % 2, 0)  # (z, y, x)
    sl = tuple(slice(o, None, step) for o in offset)
    ct_arr = sitk.GetArrayFromImage(ct)[sl].astype(np.int16)
    seg_arr = sitk.GetArrayFromImage(seg)[sl].astype(np.uint8)
    spacing = tuple(s * step for s in ct.GetSpacing())
    return ct_arr, seg_arr, spacing, ct.GetOrigin(), ct.GetDirection()


def image_from(array: np.ndarray, variant: int) -> sitk.Image:
    _, _, spacing, origin, direction = _example(variant)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def example_ct(variant: int) -> sitk.Image:
    return image_from(_example(variant)[0], variant)


def example_totalseg_labels(variant: int) -> np.ndarray:
    return _example(variant)[1]


def write(image: sitk.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


def _ball_inside(mask: np.ndarray, radius: int = 2) -> np.ndarray:
    """A small ball centred on the organ voxel nearest the organ's centroid, clipped to the organ."""
    coords = np.argwhere(mask)
    centre = coords[np.argmin(((coords - coords.mean(0)) ** 2).sum(1))]
    grid = np.indices(mask.shape)
    ball = sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius ** 2
    return ball & mask


def structure_masks(names: Iterable[str], variant: int) -> Dict[str, np.ndarray]:
    """A real (or derived) mask for every name; see the module docstring for the rules."""
    totalseg = example_totalseg_labels(variant)
    class_map = totalseg_class_map()
    taxonomy = load_taxonomy()
    present = [n for n, v in class_map.items() if np.any(totalseg == v)]
    names = list(names)
    stand_ins = iter([n for n in present if n not in names] * 4)
    masks = {}
    for name in names:
        if name in class_map:
            masks[name] = totalseg == class_map[name]
            continue
        parts = taxonomy.resolve_to_labels(name, present)  # e.g. KiTS 'kidney' = both real kidneys
        structure = taxonomy.structure(name)
        organ_labels = taxonomy.resolve_to_labels(structure.organ, present) if structure.is_lesion else []
        if parts:
            masks[name] = np.isin(totalseg, [class_map[n] for n in parts])
        elif organ_labels:
            masks[name] = _ball_inside(np.isin(totalseg, [class_map[n] for n in organ_labels]))
        else:
            masks[name] = totalseg == class_map[next(stand_ins)]
    return masks


def native_label_map(table: LabelTable, variant: int) -> np.ndarray:
    """A label map in the table's native values: each value painted with the mask of the smallest label holding it."""
    masks = structure_masks(table.labels, variant)
    out = np.zeros(example_totalseg_labels(variant).shape, dtype=np.uint8)
    for value in sorted({v for values in table.labels.values() for v in values}):
        owner = min((n for n, values in table.labels.items() if value in values), key=lambda n: len(table.labels[n]))
        out[masks[owner]] = value
    return out


def write_layout_replica(root: Path, table: LabelTable, ids_by_split: Mapping[str, List[str]],
                         first_variant: int = 0) -> Dict[str, int]:
    """Write image + label files at the table's layout patterns; returns {native id: variant used}.

    Cases use variants first_variant, first_variant + 1, ... (mod 4): equal variants are the same scan."""
    variants = {}
    for spec in table.layout["cases"]:
        for native_id in ids_by_split.get(spec["split"], []):
            variant = (first_variant + len(variants)) % 4
            variants[native_id] = variant
            write(example_ct(variant), root / spec["image"].replace(ID, native_id))
            write(image_from(native_label_map(table, variant), variant), root / spec["label"].replace(ID, native_id))
    return variants


def write_totalsegmentator_replica(root: Path, subjects: Mapping[str, str], variants: Sequence[int] = (0, 1, 2, 3)
                                   ) -> Dict[str, int]:
    """TotalSegmentator v2 native layout: <subject>/ct.nii.gz, <subject>/segmentations/<class>.nii.gz, meta.csv.

    ``subjects``: {subject id: split}; returns {subject id: variant}."""
    used = dict(zip(subjects, variants))
    for subject, variant in used.items():
        write(example_ct(variant), root / subject / "ct.nii.gz")
        totalseg = example_totalseg_labels(variant)
        for name, value in totalseg_class_map().items():
            write(image_from((totalseg == value).astype(np.uint8), variant),
                  root / subject / "segmentations" / f"{name}.nii.gz")
    lines = ["image_id;age;gender;institute;study_type;split"]
    lines += [f"{subject};60;m;A;ct abdomen;{split}" for subject, split in subjects.items()]
    (root / "meta.csv").write_text("\n".join(lines) + "\n")
    return used


def read_array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def verify_with_nnunet(folder: Path) -> None:
    """nnU-Net's own --verify_dataset_integrity check (raises on failure).

    Its process pool is swapped for a thread pool: each spawned worker would import torch again (~20 s per call on
    the 2-core test machine), while the checks themselves are identical.
    """
    os.environ.update(NNUNET_ENV)
    from nnunetv2.experiment_planning import verify_dataset_integrity as vdi
    in_process = SimpleNamespace(get_context=lambda *_: SimpleNamespace(Pool=ThreadPool))
    with mock.patch.object(vdi, "multiprocessing", in_process):
        vdi.verify_dataset_integrity(str(folder), num_processes=2)
