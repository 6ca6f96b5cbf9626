"""Fill (row, column) contours back into a mask the ways RTSTRUCT readers do, sampled at the pixel centres with
matplotlib's point-in-polygon: even-odd over all contours, nonzero winding, and the union of each contour's own
fill."""
from __future__ import annotations

import numpy as np
from matplotlib.path import Path

from nnunetv2_openvocab.inference.outputs.keyhole_contours import signed_area


def fills(contours, shape):
    """{rule: (rows, columns) bool}."""
    rows, columns = np.mgrid[:shape[0], :shape[1]]
    centres = np.stack([columns.ravel(), rows.ravel()], axis=1).astype(float)
    parity, union = np.zeros(len(centres), dtype=bool), np.zeros(len(centres), dtype=bool)
    winding = np.zeros(len(centres), dtype=int)
    for contour in contours:
        inside = Path(contour[:, ::-1]).contains_points(centres)
        parity ^= inside
        union |= inside
        winding += inside * int(np.sign(signed_area(contour)))
    return {"even-odd": parity.reshape(shape), "nonzero": (winding != 0).reshape(shape),
            "union": union.reshape(shape)}
