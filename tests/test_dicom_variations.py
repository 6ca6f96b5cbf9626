"""Issue 22 §1: every variation of the DICOM corpus (dicom_variations) either predicts into a DICOM-SEG and an RT
Structure Set that read back equal, voxel for voxel, to the same run's NIfTI masks (the SEG through dcmqi's
segimage2itkimage, the RTSTRUCT rasterised as test_dicom_rtstruct does), or is refused before any prediction in
one line that names the file and the attribute, with exit 1 and no output folder. Both DICOM objects pass the
conformance check of their IOD's mandatory attributes (dicom_conformance)."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from dicom_conformance import assert_conforms
from dicom_variations import REFUSED, VARIATIONS, build
from test_dicom_rtstruct import read_rtstruct_masks
from nnunetv2_openvocab.commands.predict import main
from nnunetv2_openvocab.inference.input_images import dicom_series_files, read_dicom_series
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name

PROMPTS = ["liver", "renal organs"]
DICOM_OUTPUTS = ("dicom_seg", "dicom_rtstruct")


def _predict(series, output, model, output_type):
    main(["-i", str(series), "-o", str(output), "-m", str(model.model_folder), "-f", "all", "--disable_tta",
          "-device", "cpu", "-step_size", "1", "--disable_progress_bar", "-npp", "0", "-nps", "0",
          "--output-type", output_type, "--prompts", *PROMPTS])


def _seg_read_by_dcmqi(seg_file, series_image, folder):
    folder.mkdir()
    subprocess.run([shutil.which("segimage2itkimage"), "--inputDICOM", str(seg_file), "--outputDirectory",
                    str(folder), "--outputType", "nifti"], check=True, capture_output=True)
    return {prompt: sitk.GetArrayFromImage(sitk.Resample(sitk.ReadImage(str(folder / f"{number}.nii.gz")),
                                                         series_image, sitk.Transform(), sitk.sitkNearestNeighbor,
                                                         0)) > 0
            for number, prompt in enumerate(PROMPTS, start=1)}


@pytest.mark.parametrize("name", [n for n in VARIATIONS if n in REFUSED])
def test_unusable_variation_is_refused_before_predicting(name, trained_openvocab_model, tmp_path):
    series = build(name, tmp_path / "series")
    file_name, attribute = REFUSED[name]
    for output_type in DICOM_OUTPUTS:
        with pytest.raises(SystemExit) as exit_info:
            _predict(series, tmp_path / output_type, trained_openvocab_model, output_type)
        message = str(exit_info.value)
        assert "\n" not in message.rstrip() and file_name in message and attribute in message, message
        assert not (tmp_path / output_type).exists()


@pytest.mark.parametrize("name", [n for n in VARIATIONS if n not in REFUSED])
def test_variation_round_trips_through_dicom_seg_and_rtstruct(name, trained_openvocab_model, tmp_path):
    series = build(name, tmp_path / "series")
    for output_type in ("nifti", *DICOM_OUTPUTS):
        _predict(series, tmp_path / output_type, trained_openvocab_model, output_type)
    masks = {p: sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "nifti" / prompt_file_name("series", p)))) > 0
             for p in PROMPTS}
    assert all(mask.any() for mask in masks.values())
    series_image = read_dicom_series(series)

    seg_file, rtstruct_file = tmp_path / "dicom_seg" / "series.dcm", tmp_path / "dicom_rtstruct" / "series_rtstruct.dcm"
    source_name = pydicom.dcmread(dicom_series_files(series)[0], stop_before_pixels=True).get("PatientName", "")
    for written in (seg_file, rtstruct_file):
        assert_conforms(written)
        assert pydicom.dcmread(written).PatientName == source_name  # decoded and re-encoded, whatever the charset
    from_seg = _seg_read_by_dcmqi(seg_file, series_image, tmp_path / "dcmqi")
    _, from_rtstruct = read_rtstruct_masks(rtstruct_file, series_image)
    for prompt in PROMPTS:
        assert np.array_equal(from_seg[prompt], masks[prompt]), prompt
        for fill in from_rtstruct[prompt]:
            assert np.array_equal(fill, masks[prompt]), prompt
