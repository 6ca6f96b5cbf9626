"""RTSTRUCT writer cost on the real CT: every structure of the bundled reference label map as one prompt.

The bundled CT (3 mm) and its label map are resampled to the spacing asked for, written as a DICOM series
(tests/dicom_series.py), and each label's mask is given to ``DicomRtstructWriter``; prints the time to turn the
masks into contours (``add``), to build, write and verify the file (``finish``), the file size and the contour
and point counts. ::

    python benchmarks/bench_rtstruct.py [--spacing 3 1]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from nnunetv2_openvocab.example_dataset import CLASS_MAP, EXAMPLE_CT
from nnunetv2_openvocab.inference.outputs.dicom_rtstruct import DicomRtstructWriter
from nnunetv2_openvocab.inference.input_images import read_dicom_series

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dicom_series import write_ct_series  # noqa: E402  (the tests' CT series writer)


def resampled(image: sitk.Image, spacing: float, interpolator) -> sitk.Image:
    size = [round(n * s / spacing) for n, s in zip(image.GetSize(), image.GetSpacing())]
    return sitk.Resample(image, size, sitk.Transform(), interpolator, image.GetOrigin(), (spacing,) * 3,
                         image.GetDirection(), -1024 if interpolator == sitk.sitkLinear else 0)


def run(spacing: float, folder: Path) -> None:
    ct = resampled(sitk.ReadImage(str(EXAMPLE_CT)), spacing, sitk.sitkLinear)
    labels = resampled(sitk.ReadImage(str(EXAMPLE_CT.with_name("example_ct_seg61.nii.gz"))), spacing,
                       sitk.sitkNearestNeighbor)
    series = folder / f"series_{spacing:g}mm"
    write_ct_series(ct, series)
    label_array = sitk.GetArrayFromImage(sitk.Resample(labels, read_dicom_series(series), sitk.Transform(),
                                                       sitk.sitkNearestNeighbor, 0))
    values = [int(v) for v in np.unique(label_array) if v]
    names = json.loads(CLASS_MAP.read_text(encoding="utf-8"))
    prompts = [names[str(v)].replace("_", " ") for v in values]
    path = folder / f"case_{spacing:g}mm_rtstruct.dcm"
    start = time.perf_counter()
    writer = DicomRtstructWriter(series, prompts, path, "benchmark")
    opened = time.perf_counter()
    for k, value in enumerate(values):
        writer.add(k, label_array == value)
    contoured = time.perf_counter()
    writer.finish()
    finished = time.perf_counter()
    rtstruct = pydicom.dcmread(path)
    contours = [c for roi in rtstruct.ROIContourSequence for c in roi.ContourSequence]
    points = sum(int(c.NumberOfContourPoints) for c in contours)
    print(f"{spacing:g} mm {ct.GetSize()}: {len(prompts)} prompts; reading {len(writer.sources)} headers "
          f"{opened - start:.2f} s, contours {contoured - opened:.2f} s, build + write + verify "
          f"{finished - contoured:.2f} s; {path.stat().st_size / 1e6:.1f} MB, {len(contours)} contours, "
          f"{points} points")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spacing", nargs="+", type=float, default=[3.0, 1.0], help="mm (default: 3 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for spacing in args.spacing:
            run(spacing, Path(folder))


if __name__ == "__main__":
    main()
