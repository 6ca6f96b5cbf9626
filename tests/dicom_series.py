"""Write a SimpleITK volume as a CT Image Storage series with pydicom: one file per axial slice, with the patient,
study, series, frame-of-reference and image-plane attributes a PACS export carries (what highdicom and dcmqi
read), int16 pixels with rescale slope 1 and intercept 0 (Hounsfield units stored as is)."""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import List

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's UID root


def write_ct_series(image: sitk.Image, folder: Path, patient_id: str = "OPENVOCAB001") -> List[Path]:
    """Slice k of ``image`` (its z index) becomes ``folder/slice_<k>.dcm``; returns the files in slice order."""
    folder.mkdir(parents=True)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    pixels = sitk.GetArrayFromImage(image).astype(np.int16)  # (z, rows, columns)
    study, series, frame_of_reference = (generate_uid(ROOT) for _ in range(3))
    today = datetime.date.today().strftime("%Y%m%d")
    files = []
    for index, plane in enumerate(pixels):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid(ROOT)
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"slice_{index:03d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Openvocab^Test", patient_id, "", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_reference
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = today
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
        ds.Modality, ds.Manufacturer, ds.SeriesNumber, ds.InstanceNumber = "CT", "test", 1, index + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in image.TransformIndexToPhysicalPoint((0, 0, index))]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*direction[:, 0], *direction[:, 1])]
        ds.PixelSpacing = [f"{image.GetSpacing()[1]:.6f}", f"{image.GetSpacing()[0]:.6f}"]  # row, column spacing
        ds.SliceThickness = f"{image.GetSpacing()[2]:.6f}"
        ds.PositionReferenceIndicator = ""
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = plane.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "HU"
        ds.KVP = "120"
        ds.PixelData = np.ascontiguousarray(plane).tobytes()
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files
