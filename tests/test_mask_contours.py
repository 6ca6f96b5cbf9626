"""Pixel-edge contours give back their mask exactly under both fill rules planning systems use (even-odd and
nonzero winding), with holes, islands in holes, several components and diagonal neighbours."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.path import Path

from nnunetv2_openvocab.inference.mask_contours import contour_loops


def _fill(loops, shape):
    """(even-odd fill, nonzero-winding fill) of ``loops`` sampled at the pixel centres, with matplotlib."""
    rows, columns = np.mgrid[:shape[0], :shape[1]]
    centres = np.stack([columns.ravel(), rows.ravel()], axis=1).astype(float)
    parity = np.zeros(centres.shape[0], dtype=bool)
    winding = np.zeros(centres.shape[0], dtype=int)
    for loop in loops:
        x, y = loop[:, 1], loop[:, 0]
        inside = Path(np.stack([x, y], axis=1)).contains_points(centres)
        parity ^= inside
        winding += inside * int(np.sign(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)))  # shoelace sign
    return parity.reshape(shape), (winding != 0).reshape(shape)


def test_ring_with_island_gives_outer_hole_and_island_loops():
    mask = np.zeros((7, 7), dtype=bool)
    mask[1:6, 1:6] = True
    mask[2:5, 2:5] = False
    mask[3, 3] = True
    loops = contour_loops(mask)
    assert sorted(len(loop) for loop in loops) == [4, 4, 4]  # corners only: straight runs are dropped
    assert sorted(float(np.ptp(loop[:, 0])) for loop in loops) == [1.0, 3.0, 5.0]  # island, hole, outer
    even_odd, nonzero = _fill(loops, mask.shape)
    assert np.array_equal(even_odd, mask) and np.array_equal(nonzero, mask)


def test_diagonal_neighbours_get_separate_loops():
    loops = contour_loops(np.eye(3, dtype=bool))
    assert len(loops) == 3 and all(len(loop) == 4 for loop in loops)


@pytest.mark.parametrize("seed", range(5))
def test_random_masks_fill_back_exactly(seed):
    rng = np.random.default_rng(seed)
    for _ in range(60):
        mask = rng.random(tuple(rng.integers(1, 16, size=2))) < rng.random()
        even_odd, nonzero = _fill(contour_loops(mask), mask.shape)
        assert np.array_equal(even_odd, mask) and np.array_equal(nonzero, mask)


def test_empty_mask_has_no_loops():
    assert contour_loops(np.zeros((4, 5), dtype=bool)) == []
