"""One closed contour per connected component of a 2D mask, its holes joined to it by zero-width keyhole cuts.

RTSTRUCT readers disagree on holes. Some fill a plane's contours by the even-odd rule (a contour inside another
is a hole), some by the nonzero winding rule, and some fill each contour on its own and unite them, which fills
separate hole contours (plastimatch 1.9 does). A keyhole contour fills the same under all three. The cut runs
from a corner of the component's outer boundary along pixel edges (one vertical, one horizontal leg) to a corner
of the hole, around the hole, and back along the same legs: traversed once each way, it encloses no area and
passes through no pixel centre, so every rule gives back the mask exactly. An island inside a hole is a
component of its own and keeps its own contour. Viewers that draw contour outlines show the cut as a line.

Loops come from ``contour_loops``: outer boundaries and holes run in opposite senses, so the shoelace area tells
them apart; coordinates are (row, column) with pixel centres at integers.
"""
from __future__ import annotations

from typing import List

import numpy as np
from matplotlib.path import Path

from nnunetv2_openvocab.inference.outputs.mask_contours import STEPS, contour_loops

BACKGROUND_TURN = 3  # contour_loops keeps the foreground at turn d + 1 of an edge's direction d


def signed_area(loop: np.ndarray) -> float:
    """Shoelace area over (row, column): negative for outer boundaries of contour_loops, positive for holes."""
    rows, columns = loop[:, 0], loop[:, 1]
    return 0.5 * float(np.sum(rows * np.roll(columns, -1) - np.roll(rows, -1) * columns))


def _hole_pixel(hole: np.ndarray) -> np.ndarray:
    """(row, column) centre of a background pixel of the hole: beside the loop's first unit edge."""
    step = np.sign(hole[1] - hole[0])
    direction = int(np.flatnonzero((STEPS == step).all(axis=1))[0])
    return hole[0] + 0.5 * step + 0.5 * STEPS[(direction + BACKGROUND_TURN) % 4]


def _joined(outer: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """``outer`` with ``hole`` spliced in through an L-shaped cut between their nearest corners."""
    distances = np.abs(outer[:, None, :] - hole[None, :, :]).sum(axis=2)  # (outer corners, hole corners)
    i, j = np.unravel_index(np.argmin(distances), distances.shape)
    elbow = np.array([hole[j, 0], outer[i, 1]])  # down/up the outer corner's column line, along the hole's row
    path = np.concatenate([outer[:i + 1], [elbow], np.roll(hole, -j, axis=0), hole[j:j + 1], [elbow], outer[i:]])
    repeated = (path == np.roll(path, 1, axis=0)).all(axis=1)  # zero-length legs when the corners line up
    return path[~repeated]


def component_contours(mask: np.ndarray) -> List[np.ndarray]:
    """One (n, 2) (row, column) contour per 4-connected component of ``mask``, holes keyholed in."""
    loops = contour_loops(mask)
    areas = [signed_area(loop) for loop in loops]
    outers = [k for k, area in enumerate(areas) if area < 0]
    contours = {k: loops[k] for k in outers}
    paths = {k: Path(loops[k][:, ::-1]) for k in outers}  # (column, row) as x, y
    for hole in (k for k, area in enumerate(areas) if area > 0):
        pixel = _hole_pixel(loops[hole])[::-1]
        # the innermost outer boundary around the hole is its component's (bigger ones enclose islands' holes)
        parent = min((k for k in outers if paths[k].contains_point(pixel)), key=lambda k: -areas[k])
        contours[parent] = _joined(contours[parent], loops[hole])
    return [contours[k] for k in outers]
