"""``--output-type dicom_seg``: the real CT written as a DICOM series with pydicom is predicted into one DICOM
Segmentation object, which two independent readers (dcmqi's segimage2itkimage and pydicom) read back equal, voxel for
voxel, to the NIfTI masks of the same run's NIfTI output, with the source series and instances referenced."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_conformance import assert_conforms
from dicom_series import write_ct_series

from nnunetv2_openvocab.example_dataset import EXAMPLE_CT
from nnunetv2_openvocab.inference.input_images import read_dicom_series
from nnunetv2_openvocab.commands.predict import main
from nnunetv2_openvocab.inference.outputs.segment_coding import GENERIC_TYPE, LESION_CATEGORY, LESION_TYPE, segment_codes
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name

PROMPTS = ["liver", "left kidney", "renal organs"]
SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


def test_prompts_get_radlex_codes_where_the_taxonomy_knows_them():
    category, property_type = segment_codes("Left  Kidney")
    assert (category.value, category.scheme_designator) == ("123037004", "SCT")
    assert (property_type.value, property_type.scheme_designator, property_type.meaning) == \
        ("RID29663", "RADLEX", "left kidney")
    assert segment_codes("liver")[1].value == "RID58"
    assert segment_codes("the bright blob near the spine") == (segment_codes("xyz")[0], GENERIC_TYPE)
    assert segment_codes("liver tumor") == (LESION_CATEGORY, LESION_TYPE)


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """48 axial slices of the real CT (fewer tiles) as a pydicom-written CT series."""
    folder = tmp_path_factory.mktemp("dicom_seg") / "patient_1"
    write_ct_series(sitk.ReadImage(str(EXAMPLE_CT))[:, :, 50:98], folder)
    return folder


def _predict(series, output, model, *extra):
    main(["-i", str(series), "-o", str(output), "-m", str(model.model_folder), "-f", "all", "--disable_tta",
          "-device", "cpu", "-step_size", "1", "--disable_progress_bar", "-npp", "0", "-nps", "0",
          "--prompts", *PROMPTS, *extra])


def _segments_read_with_pydicom(path, series_files):
    """{segment label: (slices, rows, columns) uint8} rebuilt from the frames and their source references."""
    seg = pydicom.dcmread(path)
    slice_of = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: k for k, f in enumerate(series_files)}
    rows, columns = seg.Rows, seg.Columns
    volumes = {item.SegmentNumber: np.zeros((len(series_files), rows, columns), np.uint8)
               for item in seg.SegmentSequence}
    frames = seg.pixel_array.reshape(-1, rows, columns)
    for frame, group in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        number = group.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        source = group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        volumes[number][slice_of[source]] = frame
    return seg, {item.SegmentLabel: volumes[item.SegmentNumber] for item in seg.SegmentSequence}


def test_dicom_seg_round_trips_through_dcmqi_and_pydicom(series, trained_openvocab_model, tmp_path):
    _predict(series, tmp_path / "seg", trained_openvocab_model, "--output-type", "dicom_seg")
    _predict(series, tmp_path / "nifti", trained_openvocab_model)
    seg_file = tmp_path / "seg" / "patient_1.dcm"
    assert_conforms(seg_file)
    assert sorted(p.name for p in (tmp_path / "seg").glob("*.nii.gz")) == []  # the SEG replaces the masks
    masks = {p: sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "nifti" / prompt_file_name("patient_1", p))))
             for p in PROMPTS}
    assert all(mask.sum() > 0 for mask in masks.values())

    series_files = sorted(series.iterdir())
    seg, from_pydicom = _segments_read_with_pydicom(seg_file, series_files)
    source = pydicom.dcmread(series_files[0], stop_before_pixels=True)
    assert seg.SOPClassUID == SEGMENTATION_STORAGE and seg.SegmentationType == "BINARY"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert seg.StudyInstanceUID == source.StudyInstanceUID and seg.PatientID == source.PatientID
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    codes = {item.SegmentLabel: item.SegmentedPropertyTypeCodeSequence[0].CodeValue for item in seg.SegmentSequence}
    assert list(codes) == PROMPTS and codes["liver"] == "RID58" and codes["left kidney"] == "RID29663"
    for prompt in PROMPTS:
        assert np.array_equal(from_pydicom[prompt], masks[prompt]), prompt

    dcmqi_folder = tmp_path / "dcmqi"
    dcmqi_folder.mkdir()
    subprocess.run([shutil.which("segimage2itkimage"), "--inputDICOM", str(seg_file), "--outputDirectory",
                    str(dcmqi_folder), "--outputType", "nifti"], check=True, capture_output=True)
    source_image = read_dicom_series(series)
    for number, prompt in enumerate(PROMPTS, start=1):
        segment = sitk.ReadImage(str(dcmqi_folder / f"{number}.nii.gz"))
        on_source_grid = sitk.Resample(segment, source_image, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        assert np.array_equal(sitk.GetArrayFromImage(on_source_grid) > 0, masks[prompt] > 0), prompt


def test_nifti_input_with_dicom_seg_is_refused_before_writing(trained_openvocab_model, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["-i", str(EXAMPLE_CT), "-o", str(tmp_path / "out"), "-m", str(trained_openvocab_model.model_folder),
              "-f", "all", "--output-type", "dicom_seg", "--prompts", "liver"])
    assert "--output-type dicom_seg needs DICOM series inputs" in str(exit_info.value)
    assert str(EXAMPLE_CT) in str(exit_info.value) and not (tmp_path / "out").exists()
