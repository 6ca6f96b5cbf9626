"""TotalSegmentator v1 (the paper's protocol) on a v1-layout replica of the real example.

The replica's subject folders hold one mask per v1 class (v1 names from class_map_total_v1.json), cut from the real
example label map (v2 ids): a v1 class that v2 kept gets its v2 mask, v1's myocardium gets v2's heart, the other v1-only
classes (chambers, pulmonary artery, face) stay empty.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Dict

import numpy as np
import pytest

from dataset_conversion.converters.totalsegmentator_v1 import FOLDS_FILE, default_folds
from dataset_conversion.label_tables import load_label_table
from test_conversion_support import (TOTALSEG, example_ct, example_totalseg_labels, image_from, read_array,
                                     totalseg_class_map, write)

SUBJECTS = [f"s{i:04d}" for i in range(5)]  # five folds need five subjects


def v1_class_map() -> Dict[str, int]:
    raw = json.loads((TOTALSEG / "class_map_total_v1.json").read_text(encoding="utf-8"))
    return {name: int(value) for value, name in raw.items()}


def v1_masks(variant: int) -> Dict[str, np.ndarray]:
    v2_labels, v2_ids = example_totalseg_labels(variant), totalseg_class_map()
    source = {**{name: name for name in v2_ids}, "heart_myocardium": "heart"}
    return {name: (v2_labels == v2_ids[source[name]]) if name in source else np.zeros_like(v2_labels, dtype=bool)
            for name in v1_class_map()}


def write_v1_replica(root: Path) -> Dict[str, int]:
    """<subject>/ct.nii.gz + <subject>/segmentations/<v1 class>.nii.gz; returns {subject: variant}."""
    variants = {subject: i % 4 for i, subject in enumerate(SUBJECTS)}
    for subject, variant in variants.items():
        write(example_ct(variant), root / subject / "ct.nii.gz")
        for name, mask in v1_masks(variant).items():
            write(image_from(mask.astype(np.uint8), variant), root / subject / "segmentations" / f"{name}.nii.gz")
    return variants


def expected_v1_label_map(variant: int) -> np.ndarray:
    ids = v1_class_map()
    label_map = np.zeros_like(example_totalseg_labels(variant))
    for name, mask in v1_masks(variant).items():
        label_map[mask] = ids[name]
    return label_map


def run_convert(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnunetv2_openvocab.commands.convert", "totalsegmentator", *args],
                          capture_output=True, encoding="utf-8", timeout=600)


@pytest.fixture(scope="module")
def v1_native(tmp_path_factory) -> Path:
    native = tmp_path_factory.mktemp("totalseg_v1") / "Totalsegmentator_dataset"
    write_v1_replica(native)
    return native


def test_v1_table_is_the_v1_class_map():
    table = load_label_table("totalsegmentator_v1")
    assert {name: values[0] for name, values in table.labels.items()} == v1_class_map()
    table.check()


def test_v1_converter_paints_v1_ids_and_holds_out_fold_1(v1_native, tmp_path):
    result = run_convert("--version", "1", "-i", str(v1_native), "-d", "292", "-o", str(tmp_path / "raw"), "-np", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "raw" / "Dataset292_TotalSegmentatorV1"
    dataset = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in dataset["labels"].items() if k != "background"} == v1_class_map()
    assert dataset["text_prompts"]["heart_myocardium"][0] == "myocardium"

    folds = json.loads((folder / FOLDS_FILE).read_text(encoding="utf-8"))
    assert folds["test_fold"] == 1 and folds["folds"] == default_folds(SUBJECTS)
    assert sorted(folds["folds"].values()) == [1, 2, 3, 4, 5]
    test_subjects = [s for s, fold in folds["folds"].items() if fold == 1]
    assert sorted(p.name for p in (folder / "labelsTs").iterdir()) == [f"totalseg_{s}.nii.gz" for s in test_subjects]
    assert dataset["numTraining"] == 4

    variants = {subject: i % 4 for i, subject in enumerate(SUBJECTS)}
    for subject, fold in folds["folds"].items():
        split = "Ts" if fold == 1 else "Tr"
        converted = read_array(folder / f"labels{split}" / f"totalseg_{subject}.nii.gz")
        np.testing.assert_array_equal(converted, expected_v1_label_map(variants[subject]))
    assert 3 in read_array(folder / "labelsTr" / f"totalseg_{SUBJECTS[1]}.nii.gz")  # v1's kidney_left id


def test_v1_converter_takes_an_official_split_file(v1_native, tmp_path):
    """nnU-Net's splits_final.json: fold k is entry k-1's 'val'; case ids with the prefix are accepted."""
    order = SUBJECTS[::-1]
    splits = [{"train": [f"totalseg_{s}" for s in order if s != val], "val": [f"totalseg_{val}"]} for val in order]
    split_file = tmp_path / "splits_final.json"
    split_file.write_text(json.dumps(splits), encoding="utf-8")
    result = run_convert("--version", "1", "-i", str(v1_native), "-d", "293", "-o", str(tmp_path / "raw"),
                         "--split-file", str(split_file), "-np", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "raw" / "Dataset293_TotalSegmentatorV1"
    folds = json.loads((folder / FOLDS_FILE).read_text(encoding="utf-8"))["folds"]
    assert folds == {s: order.index(s) + 1 for s in SUBJECTS}
    assert [p.name for p in (folder / "labelsTs").iterdir()] == [f"totalseg_{order[0]}.nii.gz"]


def test_v1_split_file_missing_a_subject_is_one_clear_line(v1_native, tmp_path):
    split_file = tmp_path / "folds.json"
    split_file.write_text(json.dumps({"folds": {"s0000": 1}}), encoding="utf-8")
    result = run_convert("--version", "1", "-i", str(v1_native), "-d", "294", "-o", str(tmp_path / "raw"),
                         "--split-file", str(split_file))
    assert result.returncode != 0
    assert "--split-file" in result.stderr and "in no fold" in result.stderr and "Traceback" not in result.stderr
