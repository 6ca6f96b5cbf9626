"""Pixel-edge loops give back their mask exactly when filled by the even-odd or the nonzero winding rule, with
holes, islands in holes, several components and diagonal neighbours."""
from __future__ import annotations

import numpy as np
import pytest
from contour_fills import fills

from nnunetv2_openvocab.inference.outputs.mask_contours import contour_loops


def test_ring_with_island_gives_outer_hole_and_island_loops():
    mask = np.zeros((7, 7), dtype=bool)
    mask[1:6, 1:6] = True
    mask[2:5, 2:5] = False
    mask[3, 3] = True
    loops = contour_loops(mask)
    assert sorted(len(loop) for loop in loops) == [4, 4, 4]  # corners only: straight runs are dropped
    assert sorted(float(np.ptp(loop[:, 0])) for loop in loops) == [1.0, 3.0, 5.0]  # island, hole, outer
    filled = fills(loops, mask.shape)
    assert np.array_equal(filled["even-odd"], mask) and np.array_equal(filled["nonzero"], mask)


def test_diagonal_neighbours_get_separate_loops():
    loops = contour_loops(np.eye(3, dtype=bool))
    assert len(loops) == 3 and all(len(loop) == 4 for loop in loops)


@pytest.mark.parametrize("seed", range(5))
def test_random_masks_fill_back_exactly(seed):
    rng = np.random.default_rng(seed)
    for _ in range(60):
        mask = rng.random(tuple(rng.integers(1, 16, size=2))) < rng.random()
        filled = fills(contour_loops(mask), mask.shape)
        assert np.array_equal(filled["even-odd"], mask) and np.array_equal(filled["nonzero"], mask)


def test_empty_mask_has_no_loops():
    assert contour_loops(np.zeros((4, 5), dtype=bool)) == []
