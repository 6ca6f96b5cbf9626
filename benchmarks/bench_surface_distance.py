"""Benchmark: our NSD against DeepMind's ``surface-distance`` package (the baseline), same masks, same run.

Masks: real TotalSegmentator structures from ../shared/data/totalsegmentator/example_seg_fast_force_split.nii.gz
(3 mm) upsampled 3x per axis to about 1 mm (336 x 303 x 366 voxels), each against itself eroded by two
voxels. Both implementations must give the same NSD; the script prints seconds and the speed-up ratio.

    python benchmarks/bench_surface_distance.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import SimpleITK as sitk
from scipy import ndimage

from nnunetv2_openvocab.evaluation.surface_distance import normalized_surface_distance

SHARED_DATA = Path(os.environ.get("OPENVOCAB_SHARED_DATA",
                                  Path(__file__).resolve().parents[1].parent / "shared" / "data"))
LABEL_MAP = SHARED_DATA / "totalsegmentator" / "example_seg_fast_force_split.nii.gz"
STRUCTURES = {"liver": 5, "colon": 20, "hip_left": 77}  # TotalSegmentator "total" ids
SPACING = (1.0, 1.0, 1.0)
TOLERANCE_MM = 1.0


def best_time(function, repeats: int) -> tuple:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    try:
        import surface_distance as deepmind
    except ImportError:
        raise SystemExit("Install the baseline first: pip install surface-distance") from None
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the baseline uses old scipy namespaces

    label_map = sitk.GetArrayFromImage(sitk.ReadImage(str(LABEL_MAP)))
    label_map = label_map.repeat(3, 0).repeat(3, 1).repeat(3, 2)
    ours_total = baseline_total = 0.0
    for name, label_id in STRUCTURES.items():
        reference = label_map == label_id
        prediction = ndimage.binary_erosion(reference, iterations=2)
        ours_s, ours = best_time(lambda: normalized_surface_distance(reference, prediction, SPACING, TOLERANCE_MM),
                                 args.repeats)
        baseline_s, baseline = best_time(lambda: deepmind.compute_surface_dice_at_tolerance(
            deepmind.compute_surface_distances(reference, prediction, SPACING), TOLERANCE_MM), args.repeats)
        assert abs(ours - baseline) < 1e-9, (name, ours, baseline)
        ours_total, baseline_total = ours_total + ours_s, baseline_total + baseline_s
        print(f"{name:>9}: NSD {ours:.4f}  ours {ours_s:.3f} s  deepmind {baseline_s:.3f} s  "
              f"speed-up {baseline_s / ours_s:.2f}x")
    print(f"{label_map.shape} voxels at {SPACING} mm; total ours {ours_total:.3f} s, deepmind {baseline_total:.3f} s; "
          f"ratio ours/deepmind = {ours_total / baseline_total:.3f}")


if __name__ == "__main__":
    main()
