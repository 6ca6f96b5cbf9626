"""Keyhole contours (one per connected component, holes joined by zero-width cuts) fill back to their mask under
the three rules RTSTRUCT readers use: even-odd over a plane's contours, nonzero winding, and the union of each
contour filled on its own (which fills separate hole contours)."""
from __future__ import annotations

import numpy as np
import pytest
from contour_fills import fills
from scipy import ndimage

from nnunetv2_openvocab.inference.outputs.keyhole_contours import component_contours
from nnunetv2_openvocab.inference.outputs.mask_contours import contour_loops


def test_separate_hole_contours_are_filled_by_a_union_reader_but_keyholes_are_not():
    ring = np.zeros((9, 9), dtype=bool)
    ring[1:8, 1:8] = True
    ring[2:7, 2:7] = False
    ring[3:6, 3:6] = True  # an island in the hole, with a hole of its own
    ring[4, 4] = False
    assert not np.array_equal(fills(contour_loops(ring), ring.shape)["union"], ring)
    contours = component_contours(ring)
    assert len(contours) == 2  # the ring and the island, each with its hole keyholed in
    for rule, fill in fills(contours, ring.shape).items():
        assert np.array_equal(fill, ring), rule


@pytest.mark.parametrize("seed", range(4))
def test_random_masks_fill_back_exactly_under_every_rule(seed):
    rng = np.random.default_rng(seed)
    holes = 0
    for _ in range(60):
        mask = rng.random(tuple(rng.integers(1, 20, size=2))) < rng.random()
        contours = component_contours(mask)
        assert len(contours) == ndimage.label(mask)[1]  # one contour per 4-connected component
        holes += len(contour_loops(mask)) - len(contours)
        for rule, fill in fills(contours, mask.shape).items():
            assert np.array_equal(fill, mask), rule
    assert holes > 0
