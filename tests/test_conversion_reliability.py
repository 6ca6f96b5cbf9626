"""Resumable conversion (partial outputs of an interrupted run) and the per-case report on bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from dataset_conversion.case_conversion import TRAIN, Case, ConversionJob, marker_path, run_conversion
from nnunetv2_openvocab.commands.convert import convert_to_nnunet
from dataset_conversion.label_tables import load_label_table
from dataset_conversion.parallel import run_parallel
from test_conversion_support import (example_ct, image_from, read_array, requires_shared_data, totalseg_class_map,
                                     verify_with_nnunet, write, write_layout_replica,
                                     write_totalsegmentator_replica)

pytestmark = requires_shared_data


def report_of(folder):
    return json.loads((folder / "conversion_report.json").read_text(encoding="utf-8"))


def test_resume_after_interrupted_run(tmp_path):
    table = load_label_table("kits23")
    native = tmp_path / "kits23"
    write_layout_replica(native, table, {TRAIN: ["00000", "00001", "00002"]})
    folder = convert_to_nnunet("kits23", native, 220, num_processes=1, output_root=tmp_path / "raw").parent
    done_image = folder / "imagesTr" / "kits23_00000_0000.nii.gz"
    done_mtime = done_image.stat().st_mtime_ns
    # State of a run killed while writing case 00001: its label and marker are missing, a temporary file is left
    # behind, and case 00002 was never started.
    (folder / "labelsTr" / "kits23_00001.nii.gz").unlink()
    marker_path(folder, "kits23_00001").unlink()
    stale = folder / "labelsTr" / ".kits23_00001.nii.gz.x1y2.tmp.nii.gz"
    stale.write_bytes(b"half a file")
    for path in (folder / "imagesTr" / "kits23_00002_0000.nii.gz", folder / "labelsTr" / "kits23_00002.nii.gz",
                 marker_path(folder, "kits23_00002"), folder / "dataset.json"):
        path.unlink()

    convert_to_nnunet("kits23", native, 220, num_processes=1, output_root=tmp_path / "raw")

    assert done_image.stat().st_mtime_ns == done_mtime  # finished case not redone
    assert report_of(folder)["resumed"] == 1 and report_of(folder)["converted"] == [
        "kits23_00000", "kits23_00001", "kits23_00002"]
    assert not stale.exists()
    assert json.loads((folder / "dataset.json").read_text(encoding="utf-8"))["numTraining"] == 3
    verify_with_nnunet(folder)


def test_changed_label_table_fingerprint_redoes_cases(tmp_path):
    table = load_label_table("btcv")
    native = tmp_path / "btcv"
    write_layout_replica(native, table, {TRAIN: ["0001"]})
    case = Case("btcv_0001", TRAIN, native / "Training/img/img0001.nii.gz", native / "Training/label/label0001.nii.gz")
    job = ConversionJob(tmp_path / "out", table.allowed_values, table.path, fingerprint="old")
    assert run_conversion([case], job, 1, "first")[0].resumed is False
    assert run_conversion([case], job, 1, "again")[0].resumed is True
    new_job = ConversionJob(tmp_path / "out", table.allowed_values, table.path, fingerprint="new")
    assert run_conversion([case], new_job, 1, "table changed")[0].resumed is False


def write_bad_btcv_cases(native, table):
    """Seven BTCV cases: two good (one with a sloppy label header), five with the bad inputs the report covers."""
    write_layout_replica(native, table, {TRAIN: ["0001", "0002", "0003", "0004", "0005", "0006", "0007"]})
    img, lab = "Training/img/img{}.nii.gz", "Training/label/label{}.nii.gz"
    (native / lab.format("0002")).unlink()                                   # missing label
    labels = read_array(native / lab.format("0003"))
    write(sitk.GetImageFromArray(labels[:, :-1]), native / lab.format("0003"))  # geometry mismatch (size)
    labels = read_array(native / lab.format("0004"))
    labels[0, 0, 0] = 99
    write(image_from(labels, 0), native / lab.format("0004"))                  # unexpected label value
    ct = read_array(native / img.format("0005"))
    write(image_from((ct - ct.min()).astype(np.int16), 0), native / img.format("0005"))  # no air: not CT in HU
    (native / img.format("0006")).write_bytes(b"not a nifti file")           # unreadable image
    shifted = sitk.ReadImage(str(native / lab.format("0007")))
    shifted.SetOrigin(tuple(o + 0.5 for o in shifted.GetOrigin()))
    write(shifted, native / lab.format("0007"))                               # header off by 0.5 mm: warning


def test_bad_inputs_are_reported_per_case_without_stopping(tmp_path):
    table = load_label_table("btcv")
    native = tmp_path / "RawData"
    write_bad_btcv_cases(native, table)
    folder = convert_to_nnunet("btcv", native, 17, num_processes=1, output_root=tmp_path / "raw").parent

    report = report_of(folder)
    failed = {case: problems[0]["kind"] for case, problems in report["failed"].items()}
    assert failed == {"btcv_0002": "missing_file", "btcv_0003": "geometry_mismatch",
                      "btcv_0004": "unexpected_label_values", "btcv_0005": "non_ct_modality",
                      "btcv_0006": "unreadable"}
    assert "label0002.nii.gz" in report["failed"]["btcv_0002"][0]["message"]
    assert "[99]" in report["failed"]["btcv_0004"][0]["message"]
    assert report["warnings"]["btcv_0007"][0]["kind"] == "geometry_mismatch"
    assert report["converted"] == ["btcv_0001", "btcv_0007"]
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == ["btcv_0001.nii.gz", "btcv_0007.nii.gz"]
    patched = sitk.ReadImage(str(folder / "labelsTr" / "btcv_0007.nii.gz"))
    assert np.allclose(patched.GetOrigin(), example_ct(0).GetOrigin())  # the image's header was copied
    assert json.loads((folder / "dataset.json").read_text(encoding="utf-8"))["numTraining"] == 2
    verify_with_nnunet(folder)


def test_non_integer_labels_are_rejected(tmp_path):
    table = load_label_table("segthor")
    native = tmp_path / "train"
    write_layout_replica(native, table, {TRAIN: ["01"]})
    label_path = native / "Patient_01" / "GT.nii.gz"
    write(image_from(read_array(label_path).astype(np.float32) * 0.3, 0), label_path)  # aorta 4 -> 1.2
    with pytest.raises(RuntimeError, match="No SegTHOR training case"):
        convert_to_nnunet("segthor", native, 55, num_processes=1, output_root=tmp_path / "raw")
    report = report_of(tmp_path / "raw" / "Dataset055_SegTHOR")
    assert "non-integer" in report["failed"]["segthor_01"][0]["message"]


def test_overlapping_structure_masks_warn_and_later_structure_wins(tmp_path):
    native = tmp_path / "ts"
    write_totalsegmentator_replica(native, {"s0001": "train"})
    liver_path = native / "s0001" / "segmentations" / "liver.nii.gz"
    spleen = read_array(native / "s0001" / "segmentations" / "spleen.nii.gz")
    write(image_from((read_array(liver_path) | spleen).astype(np.uint8), 0), liver_path)  # liver claims the spleen
    folder = convert_to_nnunet("totalsegmentator", native, 291, num_processes=1, output_root=tmp_path / "raw").parent
    warning = report_of(folder)["warnings"]["totalseg_s0001"][0]
    assert warning["kind"] == "overlapping_masks" and "'liver'" in warning["message"]
    labels = read_array(folder / "labelsTr" / "totalseg_s0001.nii.gz")
    assert np.all(labels[spleen > 0] == totalseg_class_map()["liver"])  # liver comes after spleen in the table


def test_run_parallel_turns_worker_exceptions_into_results():
    results = run_parallel(_fails_on_two, [1, 2, 3], 1, "test", lambda item, err: f"crashed {item}: {err}")
    assert results == [1, "crashed 2: boom", 3]


def _fails_on_two(item):
    if item == 2:
        raise RuntimeError("boom")
    return item
