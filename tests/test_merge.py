"""Merging converted datasets: harmonised label ids, per-case annotated labels (masked, never background),
lesion relations, duplicate scans, resume, and the real nnUNetv2_openvocab_merge command."""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from dataset_conversion.case_conversion import TRAIN
from nnunetv2_openvocab.commands.convert import convert_to_nnunet
from dataset_conversion.label_harmonisation import compatible_pairs, harmonise, union_duplicate_labels
from dataset_conversion.label_tables import load_label_table
from dataset_conversion.merge import merge_datasets
from dataset_conversion.region_labels import normalise
from nnunetv2_openvocab.prompts.taxonomy import load_taxonomy
from nnunetv2_openvocab.prompts.dataset_prompts import DatasetPrompts
from nnunetv2_openvocab.prompts.validation import validate_dataset
from test_conversion_support import (native_label_map, read_array, requires_shared_data, verify_with_nnunet,
                                     write_layout_replica)


def convert_replica(tmp_path, converter, table_key, native_ids, dataset_id, first_variant=0):
    """Convert a replica; datasets built from the same variants share scans (duplicates)."""
    table = load_label_table(table_key)
    native = tmp_path / f"native_{converter}"
    variants = write_layout_replica(native, table, {TRAIN: native_ids}, first_variant)
    if converter.startswith("msd"):
        (native / "dataset.json").write_text(json.dumps({"modality": {"0": "CT"}}))
    convert_to_nnunet(converter, native, dataset_id, num_processes=1, output_root=tmp_path / "raw")
    return variants


def merged_dataset(folder):
    return json.loads((folder / "dataset.json").read_text(encoding="utf-8"))


# --- pure label harmonisation ----------------------------------------------------------------------------------

def test_harmonise_gives_equal_meanings_one_value_and_keeps_regions():
    btcv = normalise({"spleen": 1, "liver": 2})
    msd_liver = normalise({"liver": [1, 2], "liver_tumor": [2]})
    harmonised = harmonise([btcv, msd_liver])
    assert harmonised.labels == {"spleen": (1,), "liver": (2, 3), "liver_tumor": (3,)}
    assert harmonised.value_maps == ({0: 0, 1: 1, 2: 2}, {0: 0, 1: 2, 2: 3})  # MSD 1 = BTCV 2 = {liver}


def test_duplicate_union_adds_compatible_structures_and_earlier_wins_conflicts():
    kits = normalise({"kidney": [1, 2], "kidney_tumor": [2]})
    btcv = normalise({"spleen": 1, "kidney_right": 2})
    harmonised = harmonise([kits, btcv])
    compatible = compatible_pairs(list(harmonised.labels), load_taxonomy().can_overlap)
    kits_map = harmonised.lookup_table(0)[np.array([0, 1, 2, 1, 0])]   # bg, kidney, tumour, kidney, bg
    btcv_map = harmonised.lookup_table(1)[np.array([1, 2, 2, 1, 2])]   # spleen, r kidney, r kidney, spleen, r kidney
    merged, annotated, table, conflicts = union_duplicate_labels(
        kits_map, {"kidney", "kidney_tumor"}, btcv_map, {"spleen", "kidney_right"}, harmonised, compatible)
    names = [sorted(table.names_of(int(v))) for v in merged]
    assert names == [["spleen"], ["kidney", "kidney_right"], ["kidney", "kidney_right", "kidney_tumor"],
                     ["kidney"],  # KiTS says kidney where BTCV says spleen: the earlier dataset wins
                     ["kidney_right"]]
    assert conflicts == 1 and annotated == {"kidney", "kidney_tumor", "spleen", "kidney_right"}
    assert set(table.labels["kidney_right"]) == {table.value_of(frozenset(n)) for n in names if "kidney_right" in n}


# --- merging real-data replicas --------------------------------------------------------------------------------

@requires_shared_data
def test_structure_annotated_in_one_dataset_is_masked_not_background_in_the_other(tmp_path):
    convert_replica(tmp_path, "btcv", "btcv", ["0001", "0002"], 17)
    msd_variants = convert_replica(tmp_path, "msd_liver", "msd_liver", ["liver_0", "liver_1"], 3, first_variant=2)
    env = dict(os.environ, nnUNet_raw=str(tmp_path / "raw"))
    result = subprocess.run(["nnUNetv2_openvocab_merge", "-d", "17", "3", "-o", "600", "--name", "Abdomen", "-np", "2"],
                            env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "raw" / "Dataset600_Abdomen"
    dataset = merged_dataset(folder)

    annotated = dataset["annotated_labels"]
    btcv_labels = sorted(load_label_table("btcv").labels)
    assert sorted(annotated["D017_btcv_0001"]) == btcv_labels                 # no liver_tumor: unknown there
    assert sorted(annotated["D003_msdliver_liver_0"]) == ["liver", "liver_tumor"]  # spleen etc. unknown there
    prompts = DatasetPrompts(dataset)
    masked = set(range(len(prompts.labels))) - set(prompts.annotated_label_indices("D003_msdliver_liver_0"))
    assert prompts.label_index("spleen") in masked
    assert prompts.label_index("liver_tumor") not in masked

    # liver means the same voxel value in both sources; the tumour stays its own label, related to its organ
    liver_values, tumour_values = set(np.atleast_1d(dataset["labels"]["liver"])), {dataset["labels"]["liver_tumor"]}
    assert tumour_values < liver_values
    assert dataset["label_relations"]["liver_tumor"] == {"organ": "liver"}
    msd_labels = read_array(folder / "labelsTr" / "D003_msdliver_liver_0.nii.gz")
    native = native_label_map(load_label_table("msd_liver"), msd_variants["liver_0"])
    assert set(np.unique(msd_labels[native == 2])) == tumour_values
    assert set(np.unique(msd_labels[native == 1])) == liver_values - tumour_values
    btcv_labels_map = read_array(folder / "labelsTr" / "D017_btcv_0001.nii.gz")
    assert set(np.unique(btcv_labels_map[read_array(tmp_path / "native_btcv/Training/label/label0001.nii.gz") == 6])) \
        == liver_values - tumour_values
    assert [s["dataset_id"] for s in dataset["source_datasets"]] == [17, 3]
    assert validate_dataset(folder) == []
    verify_with_nnunet(folder)


@requires_shared_data
def test_duplicate_scans_are_merged_once_with_united_labels(tmp_path):
    convert_replica(tmp_path, "kits23", "kits23", ["00000", "00001"], 220)
    convert_replica(tmp_path, "btcv", "btcv", ["0001", "0009"], 17)  # same two scans as KiTS (same variants)
    folder = tmp_path / "raw" / "Dataset601_Dup"
    merge_datasets([(220, tmp_path / "raw" / "Dataset220_KiTS23"), (17, tmp_path / "raw" / "Dataset017_BTCV")],
                   folder, num_processes=1)
    report = json.loads((folder / "merge_report.json").read_text(encoding="utf-8"))
    assert [d["members"] for d in report["duplicates"]] == [["0:kits23_00000", "1:btcv_0001"],
                                                            ["0:kits23_00001", "1:btcv_0009"]]
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == ["D220_kits23_00000.nii.gz",
                                                                       "D220_kits23_00001.nii.gz"]
    dataset = merged_dataset(folder)
    assert "annotated_labels" not in dataset  # both merged cases now carry every label
    merged = read_array(folder / "labelsTr" / "D220_kits23_00000.nii.gz")
    kits_native = native_label_map(load_label_table("kits23"), 0)
    btcv_native = native_label_map(load_label_table("btcv"), 0)
    both = (kits_native == 1) & (btcv_native == 2)  # KiTS kidney and BTCV right kidney
    kidney, right = set(dataset["labels"]["kidney"]), set(np.atleast_1d(dataset["labels"]["kidney_right"]))
    assert both.any() and set(np.unique(merged[both])) <= kidney & right
    tumour = kits_native == 2
    assert set(np.unique(merged[tumour])) <= set(np.atleast_1d(dataset["labels"]["kidney_tumor"]))
    verify_with_nnunet(folder)


@requires_shared_data
def test_merge_resumes_without_redoing_finished_cases(tmp_path):
    convert_replica(tmp_path, "segthor", "segthor", ["01", "02"], 55)
    sources = [(55, tmp_path / "raw" / "Dataset055_SegTHOR")]
    folder = tmp_path / "raw" / "Dataset602_Resume"
    merge_datasets(sources, folder, num_processes=1)
    first = folder / "labelsTr" / "D055_segthor_01.nii.gz"
    mtime = first.stat().st_mtime_ns
    (folder / "labelsTr" / "D055_segthor_02.nii.gz").unlink()  # as if killed before this case was written
    merge_datasets(sources, folder, num_processes=1)
    assert first.stat().st_mtime_ns == mtime
    assert (folder / "labelsTr" / "D055_segthor_02.nii.gz").is_file()
    assert merged_dataset(folder)["numTraining"] == 2


def test_merge_rejects_multichannel_sources(tmp_path):
    folder = tmp_path / "Dataset010_Two"
    (folder / "labelsTr").mkdir(parents=True)
    (folder / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT", "1": "PET"}, "labels": {
        "background": 0, "liver": 1}, "file_ending": ".nii.gz", "numTraining": 0}))
    with pytest.raises(ValueError, match="single-channel CT"):
        merge_datasets([(10, folder)], tmp_path / "Dataset011_Out", 1)
