"""NSD (surface Dice): analytic spheres, empty-mask rules, and agreement with DeepMind's ``surface-distance``
package (the reference implementation; test-only dependency) on real TotalSegmentator label maps."""
import math
import os
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from nnunetv2_openvocab.evaluation.surface_distance import (
    compute_surface_distances, normalized_surface_distance, surface_area_per_neighbour_code,
    surface_dice_from_distances,
)

SHARED_DATA = Path(os.environ.get("OPENVOCAB_SHARED_DATA",
                                  Path(__file__).resolve().parents[1].parent / "shared" / "data"))
TOTALSEG = SHARED_DATA / "totalsegmentator"
SPACINGS = [(3.0, 3.0, 3.0), (0.7, 0.7, 3.0), (3.0, 1.5, 0.8)]
# the reference package still imports scipy.ndimage's deprecated namespaces
quiet_reference = pytest.mark.filterwarnings("ignore::DeprecationWarning:surface_distance.*")


def ball(shape, spacing, center_mm, radius_mm):
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grids, center_mm)) <= radius_mm ** 2


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.7, 0.7, 3.0), (3.0, 1.5, 0.8)])
def test_identical_spheres_give_one(spacing):
    mask = ball((40, 40, 40), spacing, [20 * s for s in spacing], 12)
    assert normalized_surface_distance(mask, mask, spacing, tolerance_mm=0.0) == 1.0


def test_sphere_shifted_by_one_slice_is_within_exactly_one_slice_thickness():
    spacing = (0.7, 0.7, 3.0)
    mask = ball((50, 50, 20), spacing, (17.5, 17.5, 30.0), 12)
    shifted = np.roll(mask, 1, axis=2)
    assert normalized_surface_distance(mask, shifted, spacing, tolerance_mm=3.0) == 1.0
    assert normalized_surface_distance(mask, shifted, spacing, tolerance_mm=2.9) < 0.9


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.7, 0.7, 3.0), (3.0, 1.5, 0.8)])
def test_concentric_spheres_switch_from_zero_to_one_around_the_radius_gap(spacing):
    shape = tuple(int(60 / s) for s in spacing)
    inner, outer = ball(shape, spacing, (30, 30, 30), 15), ball(shape, spacing, (30, 30, 30), 22)
    voxel_diagonal = math.sqrt(sum(s * s for s in spacing))  # bound on the discretisation error
    assert normalized_surface_distance(inner, outer, spacing, 7 - voxel_diagonal) == 0.0
    assert normalized_surface_distance(inner, outer, spacing, 7 + voxel_diagonal) == 1.0


def test_area_scales_with_spacing_squared_and_follows_axis_permutation():
    mask = ball((30, 34, 38), (1.0, 1.0, 1.0), (15, 17, 19), 10)
    other = np.roll(mask, (2, 1), axis=(0, 2))
    area = compute_surface_distances(mask, mask, (0.5, 1.0, 2.0)).areas_reference.sum()
    assert compute_surface_distances(mask, mask, (1.0, 2.0, 4.0)).areas_reference.sum() == pytest.approx(4 * area)
    permuted = compute_surface_distances(mask.transpose(2, 0, 1), mask.transpose(2, 0, 1), (2.0, 0.5, 1.0))
    assert permuted.areas_reference.sum() == pytest.approx(area)
    assert normalized_surface_distance(mask.transpose(2, 0, 1), other.transpose(2, 0, 1), (2.0, 0.5, 1.0), 1.5) == \
        pytest.approx(normalized_surface_distance(mask, other, (0.5, 1.0, 2.0), 1.5))


def test_empty_mask_rules():
    empty, mask = np.zeros((8, 8, 8), bool), np.zeros((8, 8, 8), bool)
    mask[2:5, 2:5, 2:5] = True
    assert math.isnan(normalized_surface_distance(empty, empty, (1, 1, 1)))
    assert normalized_surface_distance(mask, empty, (1, 1, 1)) == 0.0
    assert normalized_surface_distance(empty, mask, (1, 1, 1)) == 0.0


def test_rejects_mismatched_shapes_and_bad_spacing():
    with pytest.raises(ValueError, match="same shape"):
        normalized_surface_distance(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), (1, 1, 1))
    with pytest.raises(ValueError, match="positive"):
        normalized_surface_distance(np.zeros((4, 4, 4)), np.zeros((4, 4, 4)), (1, 0, 1))


@quiet_reference
@pytest.mark.parametrize("spacing", SPACINGS)
def test_surfel_area_table_equals_deepminds(spacing):
    lookup_tables = pytest.importorskip("surface_distance.lookup_tables")
    np.testing.assert_allclose(surface_area_per_neighbour_code(spacing),
                               lookup_tables.create_table_neighbour_code_to_surface_area(spacing), atol=1e-12)


def _label_map(name):
    path = TOTALSEG / name
    if not path.is_file():
        pytest.skip(f"{path} not available (set OPENVOCAB_SHARED_DATA)")
    import SimpleITK as sitk
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


# TotalSegmentator "total" ids: 5 liver, 1 spleen, 3 kidney_left, 52 aorta, 20 colon, 21 urinary bladder, 77 hip_left
@quiet_reference
@pytest.mark.parametrize("file_name, label_ids", [
    ("example_seg.nii.gz", (5, 1, 3, 52, 20)),
    ("example_seg_fast_force_split.nii.gz", (21, 77)),
])
@pytest.mark.parametrize("spacing", SPACINGS)
def test_agrees_with_deepmind_on_real_label_maps(file_name, label_ids, spacing):
    reference_package = pytest.importorskip("surface_distance")
    label_map = _label_map(file_name)
    for label_id in label_ids:
        structure = label_map == label_id
        assert structure.any()
        for other in (ndimage.binary_erosion(structure), np.roll(structure, (1, -2), axis=(0, 2))):
            ours = compute_surface_distances(structure, other, spacing)
            theirs = reference_package.compute_surface_distances(structure, other, spacing)
            assert ours.areas_reference.sum() == pytest.approx(theirs["surfel_areas_gt"].sum(), rel=1e-9)
            for tolerance in (1.0, 2.0, 3.0):
                expected = reference_package.compute_surface_dice_at_tolerance(theirs, tolerance)
                assert abs(surface_dice_from_distances(ours, tolerance) - expected) < 1e-3


def test_liver_eroded_by_one_voxel_matches_the_documented_value():
    liver = _label_map("example_seg.nii.gz") == 5
    eroded = ndimage.binary_erosion(liver)
    # the module docstring quotes these (MONAI's default voxel-count convention gives 0.458 and 0.0)
    assert normalized_surface_distance(liver, eroded, (3.0, 1.5, 0.8), 1.0) == pytest.approx(0.7507, abs=1e-3)
    assert normalized_surface_distance(liver, eroded, (3.0, 3.0, 3.0), 1.0) == pytest.approx(0.3335, abs=1e-3)
