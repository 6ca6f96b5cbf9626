"""``<case>_preview.png``: the prediction over three axial and three coronal slices, for a quick visual check.

Slices sit at the 25th, 50th and 75th percentile of the predicted voxels along the slicing axis (of the
image when nothing was predicted). Slices are shown in radiological convention (patient's right on the
image's left, anterior up in axial views, superior up in coronal views), using the image direction that
SimpleITK reads; overlaps follow the combined label map's rule (first listed prompt on top); colours come
from prompt_colours, as in the combined map's legend and the RTSTRUCT output.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from nnunetv2_openvocab.atomic_files import atomic_path  # noqa: E402
from nnunetv2_openvocab.inference.outputs.prompt_colours import prompt_colours  # noqa: E402

CT_WINDOW_HU = (-160.0, 240.0)  # soft-tissue window (level 40, width 400)
WORLD_X, WORLD_Y, WORLD_Z = 0, 1, 2  # ITK world axes (LPS): +x patient left, +y posterior, +z superior
QUANTILES = (0.25, 0.5, 0.75)


def array_axis_orientation(properties: dict, ndim: int = 3) -> List[Tuple[int, int]]:
    """(world axis, sign) per array axis. SimpleITK arrays are (z, y, x): array axis a is index axis ndim-1-a."""
    sitk_stuff = properties.get("sitk_stuff")
    if sitk_stuff is None:  # other readers: assume axial slices along the first array axis
        return [(WORLD_Z, 1), (WORLD_Y, 1), (WORLD_X, 1)]
    direction = np.asarray(sitk_stuff["direction"], dtype=float).reshape(ndim, ndim)
    orientation = []
    for array_axis in range(ndim):
        column = direction[:, ndim - 1 - array_axis]
        world = int(np.argmax(np.abs(column)))
        orientation.append((world, 1 if column[world] > 0 else -1))
    return orientation


def oriented_slice(volume: np.ndarray, axis: int, index: int, orientation, rows: Tuple[int, int],
                   columns: Tuple[int, int]) -> np.ndarray:
    """2D slice with its rows along world ``rows`` = (axis, wanted sign) and columns along ``columns``."""
    remaining = [a for a in range(volume.ndim) if a != axis]
    image = np.take(volume, index, axis=axis)
    if orientation[remaining[0]][0] == columns[0]:
        image, remaining = image.T, remaining[::-1]
    for position, (_, wanted) in enumerate((rows, columns)):
        if orientation[remaining[position]][1] != wanted:
            image = np.flip(image, axis=position)
    return image


def slice_positions(labels: np.ndarray, axis: int) -> List[int]:
    other_axes = tuple(a for a in range(labels.ndim) if a != axis)
    profile = (labels > 0).sum(axis=other_axes).astype(np.float64)
    if profile.sum() == 0:
        profile = np.ones(labels.shape[axis])
    cumulative = np.cumsum(profile) / profile.sum()
    return [int(np.searchsorted(cumulative, q)) for q in QUANTILES]


def _display_range(image: np.ndarray) -> Tuple[float, float]:
    if float(image.min()) < -500:  # CT in Hounsfield units (air is about -1000)
        return CT_WINDOW_HU
    low, high = np.percentile(image, [0.5, 99.5])
    return float(low), float(high)


def write_preview(image: np.ndarray, labels: np.ndarray, prompts: Sequence[str], properties: dict, path: Path,
                  title: Optional[str] = None) -> None:
    """``image`` (first channel) and ``labels`` (value k = prompts[k-1]) in the reader's array layout."""
    orientation = array_axis_orientation(properties, image.ndim)
    axis_of = {world: a for a, (world, _) in enumerate(orientation)}
    spacing = list(properties["spacing"])
    lookup = np.zeros((len(prompts) + 1, 4))
    lookup[1:, :3] = prompt_colours(len(prompts))
    lookup[1:, 3] = 0.45
    views = [("axial", axis_of[WORLD_Z], (WORLD_Y, 1), (WORLD_X, 1)),
             ("coronal", axis_of[WORLD_Y], (WORLD_Z, -1), (WORLD_X, 1))]
    low, high = _display_range(image)
    figure, grid = plt.subplots(len(views), len(QUANTILES), figsize=(4 * len(QUANTILES), 3.4 * len(views) + 1.2))
    for row, (name, axis, rows, columns) in enumerate(views):
        row_spacing, column_spacing = spacing[axis_of[rows[0]]], spacing[axis_of[columns[0]]]
        for column, index in enumerate(slice_positions(labels, axis)):
            ax = grid[row, column]
            ax.imshow(oriented_slice(image, axis, index, orientation, rows, columns), cmap="gray", vmin=low,
                      vmax=high, aspect=row_spacing / column_spacing, interpolation="nearest")
            ax.imshow(lookup[oriented_slice(labels, axis, index, orientation, rows, columns)],
                      aspect=row_spacing / column_spacing, interpolation="nearest")
            ax.set_title(f"{name} slice {index}", fontsize=9)
            ax.axis("off")
    figure.legend(handles=[Patch(color=lookup[k + 1][:3], label=p) for k, p in enumerate(prompts)],
                  loc="lower center", ncol=min(len(prompts), 4), fontsize=9, frameon=False)
    if title:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout(rect=(0, 0.06, 1, 0.97))
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=90)
    plt.close(figure)
