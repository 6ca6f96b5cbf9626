"""Closed planar contours of a 2D mask that trace its pixels' outer edges exactly: outer boundaries and holes.

Each foreground pixel edge that borders background is a directed unit edge with the foreground on the same
side, so outer boundaries and hole boundaries run in opposite senses. Edges are linked into closed loops; at a
vertex shared by two diagonal foreground pixels the loop turns towards the foreground, so diagonal neighbours
get separate loops (4-connected components) that touch at a corner but never cross. Vertices on straight runs
are dropped: a loop keeps only its corners.

Rasterising the loops back by pixel centres with the even-odd rule (a centre inside an odd number of loops is
foreground: what RT planning systems, 3D Slicer and dicompyler-core do with nested contours) or with the
nonzero winding rule returns exactly the mask: every pixel centre lies half a pixel away from every edge, and
the fill of a set of edges does not depend on how they are grouped into loops.

Coordinates are (row, column) in pixel units with pixel centres at integers, so corners sit at half-integers.
"""
from __future__ import annotations

from typing import List

import numpy as np

# direction d as (row step, column step): east, south, west, north; the foreground lies at turn d + 1
STEPS = np.array([(0, 1), (1, 0), (0, -1), (-1, 0)])
TURN_TOWARDS_FOREGROUND, STRAIGHT, TURN_AWAY = 1, 0, 3


def _edge_starts(mask: np.ndarray) -> List[np.ndarray]:
    """Per direction, the (row, column) corner where each boundary edge starts (corner (i, j) = pixel (i, j)'s
    top-left corner)."""
    padded = np.pad(mask, 1)
    inside = padded[1:-1, 1:-1]
    pixels = [np.argwhere(inside & ~np.roll(padded, shift, axis)[1:-1, 1:-1])
              for shift, axis in ((1, 0), (-1, 1), (-1, 0), (1, 1))]  # background above, right, below, left
    top, right, bottom, left = pixels
    return [top, right + (0, 1), bottom + (1, 1), left + (1, 0)]


def contour_loops(mask: np.ndarray) -> List[np.ndarray]:
    """Closed loops of ``mask`` (2D, bool), each an (n, 2) float array of (row, column) corners, first corner
    not repeated at the end."""
    mask = np.asarray(mask, dtype=bool)
    columns = mask.shape[1] + 1  # corners per row
    starts = _edge_starts(mask)
    edge_ids = np.concatenate([(s[:, 0] * columns + s[:, 1]) * 4 + d for d, s in enumerate(starts)])
    if edge_ids.size == 0:
        return []
    ends = [s + STEPS[d] for d, s in enumerate(starts)]
    end_corners = np.concatenate([e[:, 0] * columns + e[:, 1] for e in ends])
    directions = edge_ids % 4
    present = np.zeros((mask.shape[0] + 1) * columns * 4, dtype=bool)
    present[edge_ids] = True
    following = np.full(edge_ids.size, -1)
    for turn in (TURN_AWAY, STRAIGHT, TURN_TOWARDS_FOREGROUND):  # last assignment wins: the preferred turn
        candidate = end_corners * 4 + (directions + turn) % 4
        following = np.where(present[candidate], candidate, following)
    next_of = dict(zip(edge_ids.tolist(), following.tolist()))
    loops, unvisited = [], set(next_of)
    for first in edge_ids.tolist():
        if first not in unvisited:
            continue
        loop, edge = [], first
        while edge in unvisited:
            unvisited.remove(edge)
            following_edge = next_of[edge]
            if following_edge % 4 != edge % 4:  # the loop turns at the end of this edge: a corner
                loop.append(following_edge // 4)
            edge = following_edge
        corners = np.array(loop)
        loops.append(np.stack([corners // columns, corners % columns], axis=1) - 0.5)
    return loops
