"""Issue 22 §5: a DICOM series with a missing or truncated slice predicted with exit 0 in a silently wrong geometry
(ITK spreads 19 slices over 20 positions). The series is now checked before predicting and refused in one line
that names the missing position or the truncated file. Series written from the bundled real CT."""
from __future__ import annotations

import shutil

import pydicom
import pytest
import SimpleITK as sitk

from dicom_series import write_ct_series
from nnunetv2_openvocab.example_dataset import EXAMPLE_CT
from nnunetv2_openvocab.inference.dicom_series_check import DicomSeriesError, check_series_slices
from nnunetv2_openvocab.inference.input_images import CaseInput, check_case

SLICES = 20


@pytest.fixture
def series(tmp_path) -> list:
    slab = sitk.Cast(sitk.ReadImage(str(EXAMPLE_CT))[100:164, 100:164, 60:60 + SLICES], sitk.sitkInt16)
    return write_ct_series(slab, tmp_path / "series")


def test_complete_series_passes_and_non_dicom_files_are_skipped(series):
    (series[0].parent / "README.txt").write_text("exported by the PACS")
    check_series_slices(series[0].parent)
    check_case(CaseInput("ct", (series[0].parent,), is_dicom=True), 1)


def test_missing_slice_is_refused_naming_its_position(series):
    expected = sitk.ReadImage(str(series[7]))  # the position the gap must name
    position = ", ".join(f"{v:.2f}" for v in expected.GetOrigin())
    series[7].unlink()
    with pytest.raises(DicomSeriesError, match=r"lacks 1 slice\(s\) between slice_006.dcm and slice_008.dcm") as error:
        check_case(CaseInput("ct", (series[0].parent,), is_dicom=True), 1)
    assert f"({position})" in str(error.value) and "\n" not in str(error.value)


def test_truncated_slice_is_refused_naming_the_file(series):
    data = series[12].read_bytes()
    series[12].write_bytes(data[: len(data) - 1000])
    with pytest.raises(DicomSeriesError, match="slice_012.dcm: .* truncated"):
        check_series_slices(series[0].parent)


def test_duplicate_and_irregular_slices_are_refused(series):
    shutil.copy(series[5], series[0].parent / "slice_005_again.dcm")
    with pytest.raises(DicomSeriesError, match="same slice position"):
        check_series_slices(series[0].parent)
    (series[0].parent / "slice_005_again.dcm").unlink()
    moved = pydicom.dcmread(series[-1])
    moved.ImagePositionPatient[2] += 0.5 * float(moved.SliceThickness)  # the last step 1.5 times the others
    moved.save_as(series[-1])
    with pytest.raises(DicomSeriesError, match="irregular slice spacing"):
        check_series_slices(series[0].parent)
