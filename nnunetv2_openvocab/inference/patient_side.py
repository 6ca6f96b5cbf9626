"""Side safety: a prompt that names a side is answered on that side of the patient, whatever its route.

The text encoders barely separate 'left' from 'right' and a model can be given an image it never saw in that
orientation, so the answer of a sided prompt is checked against the image itself:

* **Where the patient's left is** comes from the image's direction cosines, never from the array: SimpleITK and
  DICOM use LPS (patient left is +x), NIfTI affines (nibabel) RAS (patient left is -x). The array axis whose
  direction has the largest x component is the left-right axis; its sign says which way the index runs.
* **The midline** is the mid-sagittal plane of the body: the median left-right position of the body mask
  (voxels above ``BODY_HU``, -500 HU: soft tissue and bone, not air or lung). Measured on the bundled CT
  (3 mm, 122 voxels wide) it lies at index 59, 2 voxels from the array centre; every TotalSegmentator structure
  with a side keeps to its side of it except the vessels (right iliac artery: 13 % beyond, it starts at the
  aortic bifurcation) and the hips, which meet at the pubic symphysis 2 mm beyond it. When the body fills the
  field of view from edge to edge (a crop inside the body), the midline is not in view and the check says so.
* **The check**: a mask with most of its voxels beyond the midline is emptied (the model answered the other
  side). For sided structures that cross the midline little (``crosses_midline_little``), the voxels more than
  ``MIDLINE_TOLERANCE_MM`` beyond the midline are dropped. The result goes to the prompt report and
  ``--statistics``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

from nnunetv2_openvocab.prompts.grounding import Grounding
from nnunetv2_openvocab.prompts.laterality import side_of
from nnunetv2_openvocab.prompts.normalisation import prompt_side
from nnunetv2_openvocab.prompts.taxonomy import Taxonomy, load_taxonomy

BODY_HU = -500.0
EDGE_FRACTION = 0.5        # the body's edge is in view where its profile falls below half its peak
MIDLINE_TOLERANCE_MM = 5.0  # hips meet at the symphysis 2 mm beyond the estimated midline on the bundled CT
PASSED, TRIMMED, EMPTIED, NOT_CHECKED = "passed", "trimmed", "emptied", "not checked"


@dataclass(frozen=True)
class PatientFrame:
    """Where the patient's left is in an image's array: ``left_axis`` (None when unknown; ``reason`` says why),
    ``left_step`` (+1 when the index grows towards the patient's left), the midline index along that axis and
    the voxel spacing along it."""

    left_axis: Optional[int]
    left_step: int = 1
    midline: float = 0.0
    spacing_mm: float = 1.0
    reason: str = ""

    @property
    def known(self) -> bool:
        return self.left_axis is not None

    def describe(self) -> str:
        if not self.known:
            return self.reason
        towards = "higher" if self.left_step > 0 else "lower"
        return (f"patient left at {towards} indices of array axis {self.left_axis} (direction cosines); "
                f"body midline at index {self.midline:.1f}")


@dataclass(frozen=True)
class SideCheck:
    """A sided prompt's mask against its side: ``status`` passed / trimmed / emptied / not checked."""

    side: str
    status: str
    voxels: int              # before the check
    voxels_other_side: int   # beyond the midline, before the check
    voxels_removed: int
    detail: str

    def to_dict(self) -> dict:
        return asdict(self)


def left_direction(properties: dict) -> Optional[Tuple[int, int]]:
    """(array axis, +1/-1) pointing towards the patient's left, from the reader's geometry record; None if absent.

    nnU-Net's readers return arrays in SimpleITK's axis order (z, y, x), so array axis a is voxel axis 2 - a."""
    if "sitk_stuff" in properties:  # LPS direction matrix, row-major; column d is voxel axis d
        direction = np.asarray(properties["sitk_stuff"]["direction"], dtype=float).reshape(3, 3)
        towards_left = direction[0]
    elif "nibabel_stuff" in properties:  # RAS affine: patient left is -x
        stuff = properties["nibabel_stuff"]
        affine = np.asarray(stuff.get("reoriented_affine", stuff["original_affine"]), dtype=float)
        towards_left = -affine[0, :3]
    else:
        return None
    per_array_axis = towards_left[::-1]
    axis = int(np.argmax(np.abs(per_array_axis)))
    return axis, 1 if per_array_axis[axis] > 0 else -1


def patient_frame(image: np.ndarray, properties: dict) -> PatientFrame:
    """The frame of one image (first channel, array layout of ``properties``, values in HU)."""
    direction = left_direction(properties)
    if direction is None:
        return PatientFrame(None, reason="not checked: the image carries no direction cosines")
    axis, step = direction
    profile = (image > BODY_HU).sum(axis=tuple(a for a in range(image.ndim) if a != axis))
    if not profile.any():
        return PatientFrame(None, reason=f"not checked: no voxel above {BODY_HU:g} HU, no body to find the midline")
    if min(profile[0], profile[-1]) >= EDGE_FRACTION * profile.max():
        return PatientFrame(None, reason="not checked: the body fills the field of view from side to side, so its "
                                         "midline is not in view")
    cumulative = np.cumsum(profile)
    midline = float(np.searchsorted(cumulative, cumulative[-1] / 2))
    return PatientFrame(axis, step, midline, float(properties["spacing"][axis]))


def crosses_midline_little(taxonomy: Taxonomy, structure: Optional[str]) -> bool:
    """Sided organs, bones, muscles, joints and nerves are mirror images about the mid-sagittal plane and meet it
    at most at their medial edges (kidneys, lungs, adrenals, femurs, ribs, hips, gluteal and iliac muscles).
    Vessels cross it (the left brachiocephalic and left renal veins, the iliac arteries at the bifurcation) and so
    do heart chambers (the right ventricle lies in front of it): those get the majority check only."""
    if structure is None or structure not in taxonomy:
        return False
    found = taxonomy.structure(structure)
    if found.laterality == "none" or found.category == "vessel":
        return False
    return "heart" not in (structure, *taxonomy.ancestors(structure))


def _beyond(frame: PatientFrame, side: str, shape: Sequence[int], margin_voxels: float) -> Tuple[slice, ...]:
    """Index of the part of the array more than ``margin_voxels`` beyond the midline, away from ``side``."""
    toward_higher = (side == "left") == (frame.left_step > 0)  # does ``side`` lie at higher indices?
    region = [slice(None)] * len(shape)
    if toward_higher:  # the other side is at lower indices
        region[frame.left_axis] = slice(0, max(int(np.ceil(frame.midline - margin_voxels)), 0))
    else:
        region[frame.left_axis] = slice(int(np.floor(frame.midline + margin_voxels)) + 1, shape[frame.left_axis])
    return tuple(region)


def check_side(mask: np.ndarray, side: str, frame: PatientFrame, trim: bool,
               probabilities: Optional[np.ndarray] = None, may_empty: bool = True) -> SideCheck:
    """Check (and correct in place) one sided prompt's ``mask`` and, if given, its probability map.
    ``may_empty=False`` leaves a mask mostly on the other side as it is (only reported)."""
    voxels = int(np.count_nonzero(mask))
    if not frame.known:
        return SideCheck(side, NOT_CHECKED, voxels, 0, 0, frame.reason)
    other = mask[_beyond(frame, side, mask.shape, 0.0)]
    other_voxels = int(np.count_nonzero(other))
    where = f"{other_voxels} of {voxels} voxels beyond the body midline, on the patient's other side"
    if voxels and 2 * other_voxels > voxels and may_empty:
        _clear(mask, mask != 0, probabilities)
        return SideCheck(side, EMPTIED, voxels, other_voxels, voxels,
                         f"emptied: {where}; the model answered the other side ({frame.describe()})")
    if trim and other_voxels and 2 * other_voxels <= voxels:
        region = _beyond(frame, side, mask.shape, MIDLINE_TOLERANCE_MM / frame.spacing_mm)
        stray = mask[region]  # a view: clearing it clears the mask
        removed = int(np.count_nonzero(stray))
        if removed:
            _clear(stray, stray != 0, None if probabilities is None else probabilities[region])
            return SideCheck(side, TRIMMED, voxels, other_voxels, removed,
                             f"trimmed: {where}, dropped the {removed} more than {MIDLINE_TOLERANCE_MM:g} mm beyond "
                             f"it ({frame.describe()})")
    return SideCheck(side, PASSED, voxels, other_voxels, 0, f"passed: {where} ({frame.describe()})")


def _clear(mask: np.ndarray, selected: np.ndarray, probabilities: Optional[np.ndarray]) -> None:
    """Zero the selected voxels only (a sparse mask's untouched pages stay untouched)."""
    if probabilities is not None:
        probabilities[selected] = 0
    mask[selected] = 0


def check_answer_side(prompt: str, grounding: Grounding, mask: np.ndarray, probabilities: Optional[np.ndarray],
                      frame: Optional[PatientFrame], copy: bool
                      ) -> Optional[Tuple[np.ndarray, Optional[np.ndarray], SideCheck]]:
    """(mask, probabilities, check) of one prompt's answer when the prompt names a side (any phrasing, see
    prompts/normalisation.py) or is grounded to a sided structure, else None. ``copy``: the arrays are shared with
    a later prompt, correct copies. The structure that decides trimming is the grounded one, or the single label
    a training prompt names."""
    taxonomy = load_taxonomy()
    structure = grounding.structure or (grounding.labels[0] if len(grounding.labels) == 1 else None)
    side = prompt_side(prompt)
    if side is None and structure in taxonomy and taxonomy.structure(structure).laterality != "none":
        side = taxonomy.structure(structure).laterality  # 'LUL', 'arteria subclavia dextra': sided by lookup
    if side is None:
        return None
    if copy:
        mask, probabilities = mask.copy(), None if probabilities is None else probabilities.copy()
    frame = frame or PatientFrame(None, reason="not checked: no image was given to find the patient's sides")
    return mask, probabilities, check_side(mask, side, frame, crosses_midline_little(taxonomy, structure),
                                           probabilities)


def side_check_summary(per_case: Mapping[str, Mapping[str, SideCheck]]) -> Optional[str]:
    """One line for the console: how the sided prompts' answers fared (None when no prompt named a side)."""
    checks = [(case, prompt, check) for case, prompts in per_case.items() for prompt, check in prompts.items()]
    if not checks:
        return None
    flagged = "; ".join(f"'{prompt}' in {case} {check.status}" for case, prompt, check in checks
                        if check.status != PASSED)
    passed = sum(check.status == PASSED for _, _, check in checks)
    return (f"Side check: {passed} of {len(checks)} sided answers checked and on their side of the patient"
            + (f"; {flagged} (see prompt_report.md)" if flagged else "."))


def trim_label_mask(label: str, mask: np.ndarray, probabilities: Optional[np.ndarray],
                    frame: Optional[PatientFrame]) -> int:
    """A sided training label's own query mask (before any prompt uses it): the voxels well beyond the midline
    dropped when the label crosses it little, so a union of labels ('both kidneys' = left + right kidney) is
    the union of the trimmed masks its sided prompts get. A mask mostly on the other side is left to the prompt's
    own check: in a union of a left/right pair it may still be a correct answer. Returns the voxels dropped."""
    side = side_of(label)
    if side and frame is not None and frame.known and crosses_midline_little(load_taxonomy(), label):
        return check_side(mask, side, frame, True, probabilities, may_empty=False).voxels_removed
    return 0
