"""The conformance check (dicom_conformance) passes the SEG and RTSTRUCT our writers make from the real CT and
catches what the standard's tables forbid: a missing type 2 attribute, an empty type 1 one (also nested in a
sequence item), a mandatory functional group macro left out of the frames."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from dicom_conformance import conformance_problems
from dicom_variations import ct_crop
from dicom_series import write_ct_series
from nnunetv2_openvocab.inference.input_images import read_dicom_series
from nnunetv2_openvocab.inference.outputs.dicom_rtstruct import DicomRtstructWriter
from nnunetv2_openvocab.inference.outputs.dicom_seg import DicomSegWriter

WRITERS = {"seg": DicomSegWriter, "rtstruct": DicomRtstructWriter}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """{kind: path} of a SEG and an RTSTRUCT of two threshold masks of the real CT crop."""
    folder = tmp_path_factory.mktemp("conformance")
    write_ct_series(ct_crop(), folder / "series")
    volume = sitk.GetArrayFromImage(read_dicom_series(folder / "series"))
    paths = {}
    for kind, writer_class in WRITERS.items():
        writer = writer_class(folder / "series", ["bone", "air"], folder / f"{kind}.dcm", "Dataset990_Test")
        for index, mask in enumerate([volume > 200, volume < -500]):
            writer.add(index, mask.astype(np.uint8))
        paths[kind] = writer.finish()
    return paths


@pytest.mark.parametrize("kind", WRITERS)
def test_our_objects_conform_and_a_broken_one_does_not(written, kind):
    ds = pydicom.dcmread(written[kind])
    assert conformance_problems(ds) == []
    del ds.PatientID  # type 2 in the Patient Module
    ds.StudyInstanceUID = ""  # type 1 in the General Study Module
    items = ds.SegmentSequence if kind == "seg" else ds.StructureSetROISequence
    items[0].add_new("SegmentLabel" if kind == "seg" else "ROINumber", "LO" if kind == "seg" else "IS", None)
    problems = conformance_problems(ds)
    nested = "SegmentSequence>SegmentLabel" if kind == "seg" else "StructureSetROISequence>ROINumber"
    assert {"patient: PatientID (type 2) is missing", "general-study: StudyInstanceUID (type 1) is empty"} < \
        set(problems) and any(nested in problem for problem in problems), problems


def test_a_seg_without_a_mandatory_macro_fails(written):
    ds = pydicom.dcmread(written["seg"])
    for frame in ds.PerFrameFunctionalGroupsSequence:
        del frame.FrameContentSequence
    assert conformance_problems(ds) == ["functional groups: FrameContentSequence is neither shared nor in every frame"]
