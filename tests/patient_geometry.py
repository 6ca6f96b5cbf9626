"""Test helpers: the bundled CT flipped or re-oriented, and an independent judge of a mask's patient side: each
voxel's physical LPS x coordinate (SimpleITK's index-to-physical transform; patient left is +x) against the
body's median x."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def flipped(image: sitk.Image) -> sitk.Image:
    """The same patient with the array mirrored along x and the direction cosines mirrored with it."""
    return sitk.Flip(image, [True, False, False], flipAboutOrigin=False)


def reoriented(image: sitk.Image) -> sitk.Image:
    """The same voxels with the x direction cosine negated (and the origin moved so the image stays in place):
    the array's left is now the patient's right."""
    out = sitk.Image(image)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    far_corner = image.TransformIndexToPhysicalPoint((image.GetSize()[0] - 1, 0, 0))
    direction[:, 0] *= -1
    out.SetDirection(tuple(direction.ravel()))
    out.SetOrigin(far_corner)
    return out


def physical_x(image: sitk.Image, mask: np.ndarray) -> np.ndarray:
    """LPS x (mm) of every mask voxel; ``mask`` in SimpleITK's array layout (z, y, x)."""
    z, y, x = np.nonzero(mask)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    index = np.stack([x, y, z]) * np.array(image.GetSpacing())[:, None]
    return image.GetOrigin()[0] + (direction @ index)[0]


def majority_on_other_side(image: sitk.Image, mask: np.ndarray, side: str) -> bool:
    body = sitk.GetArrayFromImage(image) > -500
    midline = np.median(physical_x(image, body))
    x = physical_x(image, mask)
    other = (x < midline) if side == "left" else (x > midline)
    return bool(x.size) and 2 * int(other.sum()) > x.size
