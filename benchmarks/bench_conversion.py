"""Conversion throughput on the TotalSegmentator layout (117 per-structure masks per subject, the heaviest case).

Builds N subjects from the real example (example_ct_sm + example_seg, 122x101x30) in the native layout, then times
(1) conversion with 1 process (baseline) vs all cores, and (2) a re-run of a finished conversion (resume) vs the
full conversion. Prints both ratios. Usage: python benchmarks/bench_conversion.py [--subjects 8]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

from dataset_conversion.converters import totalsegmentator

SHARED = Path(os.environ.get("OPENVOCAB_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
TOTALSEG = SHARED / "totalsegmentator"


def build_native(root: Path, subjects: int) -> None:
    ct = sitk.ReadImage(str(TOTALSEG / "example_ct_sm.nii.gz"))
    seg = sitk.ReadImage(str(TOTALSEG / "example_seg.nii.gz"))
    class_map = json.loads((TOTALSEG / "class_map_total.json").read_text(encoding="utf-8"))
    masks = {name: sitk.Cast(seg == int(value), sitk.sitkUInt8) for value, name in class_map.items()}
    rows = ["image_id;split"]
    for i in range(subjects):
        subject = root / f"s{i:04d}"
        (subject / "segmentations").mkdir(parents=True)
        sitk.WriteImage(ct, str(subject / "ct.nii.gz"), useCompression=True)
        for name, mask in masks.items():
            sitk.WriteImage(mask, str(subject / "segmentations" / f"{name}.nii.gz"), useCompression=True)
        rows.append(f"s{i:04d};train")
    (root / "meta.csv").write_text("\n".join(rows) + "\n")


def timed(native: Path, out: Path, processes: int) -> float:
    start = time.perf_counter()
    totalsegmentator.convert(native, out, processes)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=8)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        native = Path(tmp) / "native"
        build_native(native, args.subjects)
        single = timed(native, Path(tmp) / "Dataset001_np1", 1)
        parallel = timed(native, Path(tmp) / "Dataset002_npall", cores)
        resumed = timed(native, Path(tmp) / "Dataset002_npall", cores)
        shutil.rmtree(native)
    print(f"{args.subjects} TotalSegmentator-layout subjects (117 masks each), {cores} cores")
    print(f"-np 1: {single:.2f} s   -np {cores}: {parallel:.2f} s   speed-up {single / parallel:.2f}x")
    print(f"re-run of a finished conversion (resume): {resumed:.2f} s = {resumed / parallel:.3f} of a full run")


if __name__ == "__main__":
    main()
