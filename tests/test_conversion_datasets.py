"""Every converter on a tiny replica of its dataset's native layout, built from the real TotalSegmentator CT and
label map (see test_conversion_support). Checks label values, geometry, prompts, nnU-Net's verify_dataset_integrity
and the plugin's dataset validator."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from dataset_conversion.case_conversion import TEST, TRAIN
from nnunetv2_openvocab.commands.convert import convert_to_nnunet
from dataset_conversion.converters import ct_rate, msd
from dataset_conversion.label_tables import load_label_table
from dataset_conversion.region_labels import nnunet_labels
from nnunetv2_openvocab.prompts.taxonomy import load_taxonomy
from nnunetv2_openvocab.prompts.validation import validate_dataset
from test_conversion_support import (FULL_RESOLUTION, SHARED_DATA, TOTALSEG, example_ct, native_label_map, read_array,
                                     requires_shared_data, verify_with_nnunet, write_layout_replica,
                                     write_totalsegmentator_replica)

pytestmark = requires_shared_data

# converter -> (label table, native ids per split, converter options)
LAYOUT_DATASETS = {
    "msd_liver": ("msd_liver", {TRAIN: ["liver_0", "liver_1"]}, {}),
    "msd_lung": ("msd_lung", {TRAIN: ["lung_001", "lung_003"]}, {}),
    "msd_pancreas": ("msd_pancreas", {TRAIN: ["pancreas_001", "pancreas_004"]}, {}),
    "msd_hepaticvessel": ("msd_hepaticvessel", {TRAIN: ["hepaticvessel_001", "hepaticvessel_002"]}, {}),
    "msd_colon": ("msd_colon", {TRAIN: ["colon_001", "colon_005"]}, {}),
    "kits23": ("kits23", {TRAIN: ["00000", "00001"]}, {}),
    "btcv": ("btcv", {TRAIN: ["0001", "0002"]}, {}),
    "btcv_cervix": ("btcv_cervix", {TRAIN: ["0507688", "0522688"]}, {}),
    "amos22": ("amos22", {TRAIN: ["0001", "0004"], TEST: ["0008"]}, {}),
    "flare22": ("flare22", {TRAIN: ["0001", "0002"]}, {}),
    "segthor": ("segthor", {TRAIN: ["01", "02"]}, {}),
    "segrap2023": ("segrap2023_oar", {TRAIN: ["segrap_0000", "segrap_0001"]}, {"task": "oar"}),
    "segrap2023_gtv": ("segrap2023_gtv", {TRAIN: ["segrap_0000", "segrap_0001"]}, {"task": "gtv"}),
    "covid19": ("covid19", {TRAIN: ["0003", "0004"]}, {}),
}


def write_msd_dataset_json(native: Path, modality: str = "CT") -> None:
    (native / "dataset.json").write_text(json.dumps({"name": "replica", "modality": {"0": modality},
                                                     "labels": {"0": "background", "1": "x"}}))


def assert_prompts_follow_taxonomy(dataset: dict) -> None:
    taxonomy = load_taxonomy()
    for name, prompts in dataset["text_prompts"].items():
        structure = taxonomy.structure(name)
        assert prompts == structure.prompts
        if structure.laterality != "none":
            assert all(structure.laterality in p.lower() for p in prompts), (name, prompts)


def assert_case_converted(folder: Path, identifier: str, split: str, native_image: Path, native_label: np.ndarray):
    suffix = "Tr" if split == TRAIN else "Ts"
    image = sitk.ReadImage(str(folder / f"images{suffix}" / f"{identifier}_0000.nii.gz"))
    label = sitk.ReadImage(str(folder / f"labels{suffix}" / f"{identifier}.nii.gz"))
    original = sitk.ReadImage(str(native_image))
    for converted in (image, label):
        assert converted.GetSize() == original.GetSize()
        assert np.allclose(converted.GetSpacing(), original.GetSpacing())
        assert np.allclose(converted.GetOrigin(), original.GetOrigin())
        assert np.allclose(converted.GetDirection(), original.GetDirection())
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(original))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label), native_label)


@pytest.mark.parametrize("converter", sorted(LAYOUT_DATASETS))
def test_converter_on_native_replica(converter, tmp_path):
    table_key, ids_by_split, options = LAYOUT_DATASETS[converter]
    table = load_label_table(table_key)
    native = tmp_path / "native"
    variants = write_layout_replica(native, table, ids_by_split)
    if converter.startswith("msd"):
        write_msd_dataset_json(native)
        for folder in ("imagesTr", "labelsTr"):  # macOS resource forks shipped in some MSD tarballs
            (native / folder / f"._{ids_by_split[TRAIN][0]}.nii.gz").write_bytes(b"\x00\x05\x16\x07")
    dataset_json_path = convert_to_nnunet(converter.replace("_gtv", ""), native, 501, num_processes=1,
                                          output_root=tmp_path / "raw", **options)
    folder = dataset_json_path.parent
    dataset = json.loads(dataset_json_path.read_text(encoding="utf-8"))

    assert dataset["channel_names"] == {"0": "CT"} and dataset["file_ending"] == ".nii.gz"
    assert dataset["labels"] == nnunet_labels(table.labels)
    assert dataset["numTraining"] == len(ids_by_split[TRAIN])
    report = json.loads((folder / "conversion_report.json").read_text(encoding="utf-8"))
    assert report["num_cases"] == sum(map(len, ids_by_split.values())) and report["num_failed"] == 0
    assert dataset["licence"] == table.licence and dataset["source"] == table.source
    assert ("regions_class_order" in dataset) == any(len(v) > 1 for v in table.labels.values())
    assert_prompts_follow_taxonomy(dataset)
    specs = {spec["split"]: spec for spec in table.layout["cases"]}
    for split, ids in ids_by_split.items():
        for native_id in ids:
            assert_case_converted(folder, f"{table.case_prefix}_{native_id}", split,
                                  native / specs[split]["image"].replace("{id}", native_id),
                                  native_label_map(table, variants[native_id]))
    verify_with_nnunet(folder)
    assert validate_dataset(folder) == []


def test_totalsegmentator_real_example_in_native_layout(tmp_path):
    """The real example (full resolution) as subject folders with 117 per-structure masks and meta.csv."""
    native = tmp_path / "Totalsegmentator_dataset_v201"
    write_totalsegmentator_replica(native, {"s0011": "train", "s0012": "test", "s0013": "val"},
                                   variants=(FULL_RESOLUTION, 1, 2))
    dataset_json_path = convert_to_nnunet("totalsegmentator", native, 291, num_processes=1,
                                          output_root=tmp_path / "raw")
    folder = dataset_json_path.parent
    dataset = json.loads(dataset_json_path.read_text(encoding="utf-8"))
    class_map = json.loads((TOTALSEG / "class_map_total.json").read_text(encoding="utf-8"))
    assert {int(v) for k, v in dataset["labels"].items() if k != "background"} == set(range(1, 118))
    assert {dataset["labels"][name] for name in class_map.values()} == {int(k) for k in class_map}
    assert dataset["numTraining"] == 2  # 'train' and 'val' subjects; 'test' goes to imagesTs/labelsTs
    assert dataset["text_prompts"]["kidney_left"][0] == "left kidney"
    assert_prompts_follow_taxonomy(dataset)
    real_labels = read_array(TOTALSEG / "example_seg.nii.gz")
    assert_case_converted(folder, "totalseg_s0011", TRAIN, native / "s0011" / "ct.nii.gz", real_labels)
    assert (folder / "labelsTs" / "totalseg_s0012.nii.gz").is_file()
    assert not (folder / "imagesTr" / "totalseg_s0012_0000.nii.gz").exists()
    verify_with_nnunet(folder)
    assert validate_dataset(folder) == []


def test_amos22_skips_mri_and_can_fold_validation_into_training(tmp_path):
    table = load_label_table("amos22")
    native = tmp_path / "amos22"
    write_layout_replica(native, table, {TRAIN: ["0001", "0540"], TEST: ["0008"]})  # 0540 is an MRI id
    folder = convert_to_nnunet("amos22", native, 218, num_processes=1, output_root=tmp_path / "raw",
                               validation_into_training=True).parent
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == ["amos_0001_0000.nii.gz", "amos_0008_0000.nii.gz"]
    assert not (folder / "imagesTs").exists()


def test_msd_refuses_non_ct_task(tmp_path):
    native = tmp_path / "Task01_BrainTumour"
    native.mkdir()
    write_msd_dataset_json(native, modality="FLAIR")
    with pytest.raises(ValueError, match="only the CT tasks"):
        msd.convert("liver", native, tmp_path / "out", 1)


def test_cli_converts_with_a_process_pool(tmp_path):
    """The real console command, two worker processes, output under $nnUNet_raw."""
    table = load_label_table("btcv")
    native = tmp_path / "RawData"
    write_layout_replica(native, table, {TRAIN: ["0001", "0002", "0003"]})
    env = dict(os.environ, nnUNet_raw=str(tmp_path / "raw"))
    result = subprocess.run(["nnUNetv2_openvocab_convert", "btcv", "-i", str(native), "-d", "17", "-np", "2"],
                            env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "raw" / "Dataset017_BTCV"
    assert json.loads((folder / "dataset.json").read_text(encoding="utf-8"))["numTraining"] == 3
    assert json.loads((folder / "conversion_report.json").read_text(encoding="utf-8"))["num_failed"] == 0


def test_cli_refuses_a_dataset_id_in_use(tmp_path):
    (tmp_path / "raw" / "Dataset017_Other").mkdir(parents=True)
    env = dict(os.environ, nnUNet_raw=str(tmp_path / "raw"))
    result = subprocess.run([sys.executable, "-m", "nnunetv2_openvocab.commands.convert", "btcv", "-i", str(tmp_path),
                             "-d", "17"], env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=120)
    assert result.returncode != 0 and "already used by ['Dataset017_Other']" in result.stderr


def test_ct_rate_manifest_from_real_reports(tmp_path):
    """Real CT-RATE report text, the real example CT as volumes, one volume missing, one empty report."""
    reports = pd.read_csv(SHARED_DATA / "ct_rate_reports" / "train.csv", nrows=4)
    native = tmp_path / "dataset"
    rows = []
    for i, text in enumerate(reports["report_text"], start=1):
        findings, _, impression = text.partition('"')
        name = f"train_{i}_a_1.nii.gz"
        if i == 4:  # report 4 is empty
            findings = impression = ""
        rows.append({"VolumeName": name, "ClinicalInformation_EN": "", "Technique_EN": "",
                     "Findings_EN": findings.strip(), "Impressions_EN": impression.strip()})
        if i != 3:  # volume 3 is missing
            path = ct_rate.volume_path(native / "train", name)
            path.parent.mkdir(parents=True)
            sitk.WriteImage(example_ct(0), str(path))
    (native / "radiology_text_reports").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(native / "radiology_text_reports" / "train_reports.csv", index=False)

    manifest = ct_rate.convert(native, tmp_path / "ct_rate_train.jsonl", "train", check_volumes=True, num_processes=1)
    lines = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    assert [Path(line["volume"]).name for line in lines] == ["train_1_a_1.nii.gz", "train_2_a_1.nii.gz"]
    assert all(set(line) == {"volume", "report", "captions"} and line["captions"] == [] for line in lines)
    assert lines[0]["report"].startswith("Findings: Trachea") and "\nImpression: " in lines[0]["report"]
    report = json.loads((tmp_path / "ct_rate_train.report.json").read_text(encoding="utf-8"))
    assert report["problem_counts"] == {"empty_report": 1, "missing_file": 1}
