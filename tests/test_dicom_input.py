"""DICOM series input: the real CT written as a DICOM series is predicted like its NIfTI twin, and the masks
keep the series' geometry."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_openvocab.example_dataset import EXAMPLE_CT
from nnunetv2_openvocab.inference.input_images import InputImageError, check_case, find_cases
from nnunetv2_openvocab.commands.predict import main
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name

PROMPTS = ["liver", "renal organs"]


def ct_slab() -> sitk.Image:
    """48 axial slices of the real CT (fewer sliding-window tiles), as int16 like scanner DICOM."""
    return sitk.Cast(sitk.ReadImage(str(EXAMPLE_CT))[:, :, 50:98], sitk.sitkInt16)


def write_dicom_series(image: sitk.Image, folder, series_uid: str = "1.2.826.0.1.3680043.2.1125.1.1") -> None:
    folder.mkdir(parents=True)
    direction = image.GetDirection()
    orientation = "\\".join(f"{v:.6f}" for v in (direction[0], direction[3], direction[6],
                                                  direction[1], direction[4], direction[7]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for index in range(image.GetDepth()):
        slice_image = image[:, :, index]
        position = image.TransformIndexToPhysicalPoint((0, 0, index))
        for tag, value in {"0008|0060": "CT", "0020|000d": "1.2.826.0.1.3680043.2.1125.1", "0020|000e": series_uid,
                           "0020|0037": orientation, "0020|0032": "\\".join(f"{p:.6f}" for p in position),
                           "0020|0013": str(index + 1), "0018|0050": f"{image.GetSpacing()[2]:.6f}",
                           "0028|1052": "0", "0028|1053": "1",
                           "0008|0018": f"{series_uid}.{index + 1}"}.items():
            slice_image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice_{index:03d}.dcm"))
        writer.Execute(slice_image)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dicom")
    slab = ct_slab()
    sitk.WriteImage(slab, str(root / "ct_0000.nii.gz"))
    write_dicom_series(slab, root / "dicom_ct")
    return root


def test_dicom_folders_are_found_as_cases(inputs):
    cases = {c.case_id: c for c in find_cases(inputs, ".nii.gz")}
    assert set(cases) == {"ct", "dicom_ct"} and cases["dicom_ct"].is_dicom
    assert find_cases(inputs / "dicom_ct", ".nii.gz")[0].case_id == "dicom_ct"
    check_case(cases["dicom_ct"], num_channels=1)


def test_a_folder_with_two_series_is_refused(tmp_path):
    slab = ct_slab()[:, :, :4]
    write_dicom_series(slab, tmp_path / "mixed", series_uid="1.2.3.4.1")
    write_dicom_series(slab, tmp_path / "other", series_uid="1.2.3.4.2")
    for path in (tmp_path / "other").iterdir():
        path.rename(tmp_path / "mixed" / f"b_{path.name}")
    with pytest.raises(InputImageError, match="holds 2 series"):
        check_case(find_cases(tmp_path / "mixed", ".nii.gz")[0], num_channels=1)


def test_dicom_series_prediction_matches_nifti_and_keeps_geometry(inputs, trained_openvocab_model, tmp_path):
    main(["-i", str(inputs), "-o", str(tmp_path), "-m", str(trained_openvocab_model.model_folder), "-f", "all",
          "--disable_tta", "-device", "cpu", "-step_size", "1", "--disable_progress_bar", "--prompts", *PROMPTS])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(inputs / "dicom_ct")))
    series = reader.Execute()
    nifti = sitk.ReadImage(str(inputs / "ct_0000.nii.gz"))
    for prompt in PROMPTS:
        from_dicom = sitk.ReadImage(str(tmp_path / prompt_file_name("dicom_ct", prompt)))
        from_nifti = sitk.ReadImage(str(tmp_path / prompt_file_name("ct", prompt)))
        assert from_dicom.GetSize() == series.GetSize()
        for get in ("GetSpacing", "GetOrigin", "GetDirection"):
            assert np.allclose(getattr(from_dicom, get)(), getattr(series, get)(), atol=1e-5), get
            assert np.allclose(getattr(series, get)(), getattr(nifti, get)(), atol=1e-5), get
        dicom_mask = sitk.GetArrayFromImage(from_dicom)
        assert dicom_mask.sum() > 0 and np.array_equal(dicom_mask, sitk.GetArrayFromImage(from_nifti))
