"""Issue 22 §2, §3: DICOM-SEG from the series real archives hold, rebuilt from the bundled CT. The Siemens-like
series (anonymised, JPEG 2000 lossless, SOP Class/Instance UID empty in the data set and present only in the
file meta) stopped with highdicom's KeyError; the GE-like series (Specific Character Set present but empty)
with "'' is not a valid SpecificCharacterSetValues"; both after the whole prediction. Now both write a SEG that
reads back equal to the masks, and an unreferenceable series is refused by the up-front check, in one line.
The masks are thresholds of the real CT, so no model is needed."""
from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import JPEG2000Lossless

from dicom_conformance import assert_conforms
from dicom_series import write_ct_series
from nnunetv2_openvocab.example_dataset import EXAMPLE_CT
from nnunetv2_openvocab.inference.input_images import CaseInput, dicom_series_files, read_dicom_series
from nnunetv2_openvocab.inference.outputs.dicom_seg import DicomSegWriter
from nnunetv2_openvocab.inference.outputs.dicom_sources import check_dicom_sources
from nnunetv2_openvocab.inference.outputs.dicom_sources import DicomSourceError

PROMPTS = ("bone", "air")


def rewrite(folder, change) -> None:
    for path in dicom_series_files(folder):
        ds = pydicom.dcmread(path)
        change(ds)
        ds.save_as(path)


def siemens_like(ds) -> None:
    ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
    ds.SOPClassUID, ds.SOPInstanceUID = "", ""
    ds.PatientName, ds.PatientID = "", "ANON"


def ge_like(ds) -> None:
    ds.SpecificCharacterSet = ""
    del ds.StudyID, ds.SeriesNumber  # type 2 values the SEG copies or derives


@pytest.fixture
def series(tmp_path):
    slab = sitk.Cast(sitk.ReadImage(str(EXAMPLE_CT))[30:94, 20:84, 60:72], sitk.sitkInt16)
    write_ct_series(slab, tmp_path / "series")
    return tmp_path / "series"


def write_seg(folder, out):
    volume = sitk.GetArrayFromImage(read_dicom_series(folder))  # the series' own array layout
    masks = [volume > 200, volume < -500]
    writer = DicomSegWriter(folder, PROMPTS, out, "Dataset990_Test")
    for index, mask in enumerate(masks):
        writer.add(index, mask)
    return writer.finish(), masks


@pytest.mark.parametrize("vendor", [siemens_like, ge_like], ids=["siemens_like", "ge_like"])
def test_vendor_series_write_a_seg_equal_to_the_masks(series, tmp_path, vendor):
    rewrite(series, vendor)
    check_dicom_sources([CaseInput("ct", (series,), is_dicom=True)])
    path, masks = write_seg(series, tmp_path / "ct.dcm")
    assert_conforms(path)
    seg = hd.seg.segread(path)
    sources = [pydicom.dcmread(p, stop_before_pixels=True) for p in dicom_series_files(series)]
    uids = [s.file_meta.MediaStorageSOPInstanceUID for s in sources]
    for number, mask in enumerate(masks, start=1):
        read_back = seg.get_pixels_by_source_instance(uids, segment_numbers=[number], combine_segments=True,
                                                      ignore_spatial_locations=True)
        assert np.array_equal(read_back.astype(bool), mask)


@pytest.mark.parametrize("attribute", ["FrameOfReferenceUID", "SOPInstanceUID"])
def test_unreferenceable_series_is_refused_up_front(series, attribute):
    def blank(ds):
        setattr(ds, attribute, "")
        ds.file_meta.MediaStorageSOPInstanceUID = "" if attribute == "SOPInstanceUID" else \
            ds.file_meta.MediaStorageSOPInstanceUID

    rewrite(series, blank)
    with pytest.raises(DicomSourceError, match=f"slice_000.dcm: {attribute} "):
        check_dicom_sources([CaseInput("ct", (series,), is_dicom=True)])
