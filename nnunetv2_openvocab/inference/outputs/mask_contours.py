"""Closed planar contours of a 2D mask that trace its pixels' outer edges exactly: outer boundaries and holes.

Each foreground pixel edge that borders background is a directed unit edge with the foreground on the same
side, so outer boundaries and hole boundaries run in opposite senses. Edges are linked into closed loops; at a
vertex shared by two diagonal foreground pixels the loop turns towards the foreground, so diagonal neighbours
get separate loops (4-connected components) that touch at a corner but never cross. Vertices on straight runs
are dropped: a loop keeps only its corners.

Rasterising the loops back by pixel centres with the even-odd rule (a centre inside an odd number of loops is
foreground) or with the nonzero winding rule returns exactly the mask: every pixel centre lies half a pixel
away from every edge, and the fill of a set of edges does not depend on how they are grouped into loops.
keyhole_contours joins holes to their outer boundary for readers that fill each contour on its own.

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
    rows_used, columns_used = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows_used.size == 0:
        return []
    offset = np.array([rows_used[0], columns_used[0]])  # trace the bounding box only: far fewer pixels to scan
    mask = mask[rows_used[0]:rows_used[-1] + 1, columns_used[0]:columns_used[-1] + 1]
    columns = mask.shape[1] + 1  # corners per row
    starts = _edge_starts(mask)
    edge_ids = np.concatenate([(s[:, 0] * columns + s[:, 1]) * 4 + d for d, s in enumerate(starts)])
    ends = [s + STEPS[d] for d, s in enumerate(starts)]
    end_corners = np.concatenate([e[:, 0] * columns + e[:, 1] for e in ends])
    directions = edge_ids % 4
    present = np.zeros((mask.shape[0] + 1) * columns * 4, dtype=bool)
    present[edge_ids] = True
    following = np.full(edge_ids.size, -1)
    for turn in (TURN_AWAY, STRAIGHT, TURN_TOWARDS_FOREGROUND):  # last assignment wins: the preferred turn
        candidate = end_corners * 4 + (directions + turn) % 4
        following = np.where(present[candidate], candidate, following)
    order = np.argsort(edge_ids)
    following = order[np.searchsorted(edge_ids[order], following)]  # edge id -> position in edge_ids
    loops = [np.array(corners) for corners in _walk(following.tolist(), (directions[following] != directions).tolist(),
                                                       end_corners.tolist())]
    return [np.stack([corners // columns, corners % columns], axis=1) + offset - 0.5 for corners in loops]


def _walk(following: List[int], turns_at_end: List[bool], end_corners: List[int]) -> List[List[int]]:
    """The cycles of the edge permutation ``following``, each as the corners where it turns."""
    loops, visited = [], bytearray(len(following))
    for first in range(len(following)):
        loop, edge = [], first
        while not visited[edge]:
            visited[edge] = True
            if turns_at_end[edge]:
                loop.append(end_corners[edge])
            edge = following[edge]
        if loop:  # empty when `first` lies on a loop already walked
            loops.append(loop)
    return loops
