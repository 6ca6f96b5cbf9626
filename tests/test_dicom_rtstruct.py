"""``--output-type dicom_rtstruct``: the real CT, written as a DICOM series with pydicom, gets one RT Structure Set.

Read back with pydicom and rasterised here (matplotlib's point-in-polygon, placed with the geometry SimpleITK reads
from the series, not the writer's), every ROI equals its mask, whether a plane's contours are combined by the
even-odd rule or filled one by one and united (readers differ on holes): first the writer alone on the real
CT's reference label masks, in three geometries (as stored, slices in reverse order, an oblique in-plane direction
with unequal row and column spacing), then the command line with the trained model against its own NIfTI masks."""
from __future__ import annotations

import json
import logging
import shutil
import subprocess

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_conformance import assert_conforms
from dicom_series import write_ct_series
from matplotlib import colormaps
from matplotlib.path import Path
from scipy import ndimage

from nnunetv2_openvocab.example_dataset import EXAMPLE_CT
from nnunetv2_openvocab.inference.outputs.dicom_rtstruct import DicomRtstructWriter, check_rtstruct
from nnunetv2_openvocab.inference.input_images import read_dicom_series
from nnunetv2_openvocab.commands.predict import main
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name

EXAMPLE_LABELS = EXAMPLE_CT.with_name("example_ct_seg61.nii.gz")
# prompt -> TotalSegmentator labels of the bundled reference map; liver has holes on some slices, the kidneys
# are two components per slice, and nothing of the brain is in an abdominal CT
LABELS_OF_PROMPT = {"liver": [5], "renal organs": [2, 3], "colon": [20], "sacrum": [25], "brain": []}
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"


def _tab10(k):
    return [round(255 * channel) for channel in colormaps["tab10"](k)[:3]]


def _reversed_slices(image):
    return sitk.Flip(image, [False, False, True])  # same voxels in space, slice 0 now the most cranial


def _oblique(image):
    copy = sitk.Image(image)
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    copy.SetDirection((rotation @ np.array(image.GetDirection()).reshape(3, 3)).ravel().tolist())
    copy.SetSpacing((2.0, 3.5, 3.0))  # columns 2 mm apart, rows 3.5 mm: a swapped Pixel Spacing shows
    return copy


def dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def read_rtstruct_masks(path, series_image):
    """The RTSTRUCT at ``path`` and {ROI name: ((slices, rows, columns) bool even-odd fill, union of the contours'
    own fills)} in ``series_image``'s grid."""
    rtstruct = pydicom.dcmread(path)
    columns, rows, slices = series_image.GetSize()
    index_to_patient = np.array(series_image.GetDirection()).reshape(3, 3) * np.array(series_image.GetSpacing())
    patient_to_index = np.linalg.inv(index_to_patient)
    grid_rows, grid_columns = np.mgrid[:rows, :columns]
    centres = np.stack([grid_columns.ravel(), grid_rows.ravel()], axis=1).astype(float)
    names = {roi.ROINumber: roi.ROIName for roi in rtstruct.StructureSetROISequence}
    masks = {}
    for roi in rtstruct.ROIContourSequence:
        even_odd, union = (np.zeros((slices, rows, columns), dtype=bool) for _ in range(2))
        for contour in roi.ContourSequence:
            assert contour.ContourGeometricType == "CLOSED_PLANAR"
            points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
            index = (points - np.array(series_image.GetOrigin())) @ patient_to_index.T  # (n, 3): column, row, slice
            slice_index = int(np.rint(index[0, 2]))
            assert np.allclose(index[:, 2], slice_index, atol=1e-3)  # planar, on a slice
            inside = Path(index[:, :2]).contains_points(centres).reshape(rows, columns)
            even_odd[slice_index] ^= inside
            union[slice_index] |= inside
        masks[names[roi.ReferencedROINumber]] = even_odd, union
    return rtstruct, masks


def _check_references(rtstruct, series_folder):
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(series_folder.iterdir())]
    by_uid = {source.SOPInstanceUID: source for source in sources}
    source = sources[0]
    assert rtstruct.SOPClassUID == RT_STRUCTURE_SET_STORAGE and rtstruct.Modality == "RTSTRUCT"
    assert rtstruct.StudyInstanceUID == source.StudyInstanceUID and rtstruct.PatientID == source.PatientID
    assert rtstruct.SeriesInstanceUID not in (source.SeriesInstanceUID, "")
    frame = rtstruct.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == source.FrameOfReferenceUID
    study = frame.RTReferencedStudySequence[0]
    assert study.ReferencedSOPInstanceUID == source.StudyInstanceUID
    series = study.RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == source.SeriesInstanceUID
    assert {item.ReferencedSOPInstanceUID for item in series.ContourImageSequence} == set(by_uid)
    assert {roi.ReferencedFrameOfReferenceUID for roi in rtstruct.StructureSetROISequence} == \
        {source.FrameOfReferenceUID}
    for roi in rtstruct.ROIContourSequence:
        for contour in roi.ContourSequence:  # each contour lies in the plane of the instance it references
            image = by_uid[contour.ContourImageSequence[0].ReferencedSOPInstanceUID]
            normal = np.cross(*np.asarray(image.ImageOrientationPatient, dtype=float).reshape(2, 3))
            points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
            assert np.allclose((points - np.asarray(image.ImagePositionPatient, dtype=float)) @ normal, 0, atol=1e-2)


def _real_ct_series(geometry, tmp_path):
    """The bundled CT as a DICOM series, its grid as SimpleITK reads it, and the prompts' reference masks there."""
    image, labels = sitk.ReadImage(str(EXAMPLE_CT)), sitk.ReadImage(str(EXAMPLE_LABELS))
    if geometry is not None:
        image, labels = geometry(image), geometry(labels)
    series_folder = tmp_path / "patient_1"
    write_ct_series(image, series_folder)
    series_image = read_dicom_series(series_folder)
    label_array = sitk.GetArrayFromImage(sitk.Resample(labels, series_image, sitk.Transform(),
                                                       sitk.sitkNearestNeighbor, 0))
    return series_folder, series_image, {p: np.isin(label_array, values) for p, values in LABELS_OF_PROMPT.items()}


@pytest.mark.parametrize("geometry", [None, _reversed_slices, _oblique], ids=["as_stored", "reversed", "oblique"])
def test_writer_round_trips_the_real_ct_labels(geometry, tmp_path, caplog):
    series_folder, series_image, expected = _real_ct_series(geometry, tmp_path)
    assert any((ndimage.binary_fill_holes(plane) & ~plane).any() for plane in expected["liver"])  # holes tested
    assert max(ndimage.label(plane)[1] for plane in expected["renal organs"]) >= 2  # and several components

    path = tmp_path / "out" / "patient_1_rtstruct.dcm"
    writer = DicomRtstructWriter(series_folder, list(LABELS_OF_PROMPT), path, "Dataset990_test")
    for k, mask in enumerate(expected.values()):
        writer.add(k, mask.astype(np.uint8))
    with caplog.at_level(logging.WARNING):
        assert writer.finish() == path
    assert_conforms(path)
    assert "'brain'" in caplog.text and writer.empty_prompts == ["brain"]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left

    rtstruct, masks = read_rtstruct_masks(path, series_image)
    assert list(masks) == ["liver", "renal organs", "colon", "sacrum"]  # the empty prompt is left out
    assert rtstruct.StructureSetDescription.endswith("empty mask: brain")  # and named
    for prompt, fills in masks.items():
        for mask in fills:
            assert dice(mask, expected[prompt]) >= 0.95, prompt
            assert np.array_equal(mask, expected[prompt]), prompt  # pixel-edge contours: exact
    assert [list(map(int, roi.ROIDisplayColor)) for roi in rtstruct.ROIContourSequence] == [_tab10(k) for k in range(4)]
    _check_references(rtstruct, series_folder)


@pytest.mark.skipif(shutil.which("plastimatch") is None, reason="plastimatch not installed (apt install plastimatch)")
def test_plastimatch_reads_the_oblique_rtstruct_back(tmp_path):
    """plastimatch, a radiotherapy tool, fills each contour on its own: separate hole contours come back filled."""
    series_folder, series_image, expected = _real_ct_series(_oblique, tmp_path)
    path = tmp_path / "patient_1_rtstruct.dcm"
    writer = DicomRtstructWriter(series_folder, list(LABELS_OF_PROMPT), path, "Dataset990_test")
    for k, mask in enumerate(expected.values()):
        writer.add(k, mask)
    writer.finish()
    subprocess.run(["plastimatch", "convert", "--input", str(path), "--referenced-ct", str(series_folder),
                    "--output-prefix", str(tmp_path / "plastimatch"), "--prefix-format", "nii.gz"],
                   check=True, capture_output=True)
    for prompt in ("liver", "renal organs", "colon", "sacrum"):
        structure = sitk.ReadImage(str(tmp_path / "plastimatch" / f"{prompt}.nii.gz"))
        on_series_grid = sitk.Resample(structure, series_image, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        assert np.array_equal(sitk.GetArrayFromImage(on_series_grid) > 0, expected[prompt]), prompt


def test_truncated_rtstruct_fails_the_check(tmp_path):
    image = sitk.ReadImage(str(EXAMPLE_CT))[:, :, 40:44]
    write_ct_series(image, tmp_path / "series")
    mask = np.zeros((4, image.GetHeight(), image.GetWidth()), dtype=bool)
    mask[1:3, 20:60, 30:70] = True
    path = tmp_path / "case_rtstruct.dcm"
    writer = DicomRtstructWriter(tmp_path / "series", ["box"], path, "test")
    writer.add(0, mask)
    writer.finish()
    check_rtstruct(path, rois=1)
    with pytest.raises(ValueError, match="ROIs"):
        check_rtstruct(path, rois=2)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError):
        check_rtstruct(path, rois=1)


PROMPTS = ["liver", "left kidney", "renal organs"]


def _predict(series, output, model, *extra):
    main(["-i", str(series), "-o", str(output), "-m", str(model.model_folder), "-f", "all", "--disable_tta",
          "-device", "cpu", "-step_size", "1", "--disable_progress_bar", "-npp", "0", "-nps", "0",
          "--prompts", *PROMPTS, *extra])


def test_command_line_rtstruct_matches_the_nifti_masks(trained_openvocab_model, tmp_path):
    series = tmp_path / "patient_1"
    write_ct_series(sitk.ReadImage(str(EXAMPLE_CT))[:, :, 50:98], series)  # 48 slices: fewer tiles
    _predict(series, tmp_path / "rt", trained_openvocab_model, "--output-type", "dicom_rtstruct", "--combined")
    _predict(series, tmp_path / "nifti", trained_openvocab_model)
    assert list((tmp_path / "rt").glob("*.nii.gz")) == []  # the RTSTRUCT replaces the per-prompt masks
    masks = {p: sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "nifti" / prompt_file_name("patient_1", p))))
             for p in PROMPTS}
    assert all(mask.sum() > 0 for mask in masks.values())
    assert_conforms(tmp_path / "rt" / "patient_1_rtstruct.dcm")
    rtstruct, from_rtstruct = read_rtstruct_masks(tmp_path / "rt" / "patient_1_rtstruct.dcm",
                                                  read_dicom_series(series))
    assert list(from_rtstruct) == PROMPTS
    for prompt in PROMPTS:
        for mask in from_rtstruct[prompt]:
            assert dice(mask, masks[prompt] > 0) >= 0.95, prompt
            assert np.array_equal(mask, masks[prompt] > 0), prompt
    legend = json.loads((tmp_path / "rt" / "combined" / "patient_1.json").read_text())
    assert ["#" + bytes(map(int, roi.ROIDisplayColor)).hex() for roi in rtstruct.ROIContourSequence] == \
        [legend["colours"][str(k)] for k in range(1, len(PROMPTS) + 1)]
    _check_references(rtstruct, series)


def test_nifti_input_with_rtstruct_is_refused_before_writing(trained_openvocab_model, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["-i", str(EXAMPLE_CT), "-o", str(tmp_path / "out"), "-m", str(trained_openvocab_model.model_folder),
              "-f", "all", "--output-type", "dicom_rtstruct", "--prompts", "liver"])
    assert "--output-type dicom_rtstruct needs DICOM series inputs" in str(exit_info.value)
    assert str(EXAMPLE_CT) in str(exit_info.value) and not (tmp_path / "out").exists()
