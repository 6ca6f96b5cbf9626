"""Per-case segmentation metrics and patient-level lesion detection, on binary masks with explicit spacing.

Rules for empty masks (nnU-Net's convention):
    * Dice: NaN when reference and prediction are both empty, 0.0 when exactly one is.
    * NSD: the same (see ``surface_distance``).
NaN values are left out of means, so a structure absent from a case and correctly not predicted neither
helps nor hurts.

Lesion detection (CLIP-Driven Universal Model, Table 4): a case is reference-positive when its reference
has any lesion voxel. It is predicted-positive when the *largest* 26-connected predicted component is
larger than ``threshold_ml``. The largest component, rather than the total volume, keeps scattered
single-voxel false positives from adding up to a detection. The paper does not publish its threshold; its
authors' later detection code tunes one per organ on validation data (they try 0.01 to 0.5 ml), so treat
``DEFAULT_DETECTION_THRESHOLD_ML`` as an operating point to tune, not a constant. Sensitivity, specificity
and their harmonic mean follow; each is NaN when its denominator is empty (no positive or no negative case).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Iterable, Sequence, Tuple

import numpy as np
from scipy import ndimage

from nnunetv2_openvocab.evaluation.surface_distance import bounding_box_slices, normalized_surface_distance

DEFAULT_TOLERANCE_MM = 1.0
# roughly a 6 mm sphere: the size below which radiologists rarely call a lesion
DEFAULT_DETECTION_THRESHOLD_ML = 0.1
_MM3_PER_ML = 1000.0


def dice_coefficient(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Volumetric Dice of two binary masks; NaN if both are empty."""
    reference, prediction = reference.astype(bool, copy=False), prediction.astype(bool, copy=False)
    volume_sum = int(reference.sum()) + int(prediction.sum())
    if volume_sum == 0:
        return float("nan")
    return 2.0 * int(np.logical_and(reference, prediction).sum()) / volume_sum


def voxel_volume_ml(spacing_mm: Sequence[float]) -> float:
    return float(np.prod(spacing_mm)) / _MM3_PER_ML


def largest_component_volume_ml(mask: np.ndarray, spacing_mm: Sequence[float]) -> float:
    """Volume (ml) of the largest 26-connected component of ``mask``; 0.0 if it is empty."""
    box = bounding_box_slices(mask.astype(bool, copy=False))
    if box is None:
        return 0.0
    components, count = ndimage.label(mask[box], structure=np.ones((3, 3, 3), bool))
    largest_voxels = int(np.bincount(components.ravel())[1:].max()) if count else 0
    return largest_voxels * voxel_volume_ml(spacing_mm)


@dataclass(frozen=True)
class CaseMetrics:
    """Metrics of one prompt in one case. Volumes in ml."""

    dice: float
    nsd: float
    reference_ml: float
    prediction_ml: float
    largest_prediction_component_ml: float


def evaluate_binary_case(
    reference: np.ndarray,
    prediction: np.ndarray,
    spacing_mm: Sequence[float],
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
) -> CaseMetrics:
    """Dice, NSD at ``tolerance_mm``, volumes and the largest predicted component of one binary pair."""
    reference, prediction = reference.astype(bool, copy=False), prediction.astype(bool, copy=False)
    voxel_ml = voxel_volume_ml(spacing_mm)
    return CaseMetrics(
        dice=dice_coefficient(reference, prediction),
        nsd=normalized_surface_distance(reference, prediction, spacing_mm, tolerance_mm),
        reference_ml=int(reference.sum()) * voxel_ml,
        prediction_ml=int(prediction.sum()) * voxel_ml,
        largest_prediction_component_ml=largest_component_volume_ml(prediction, spacing_mm),
    )


def is_detected(largest_prediction_component_ml: float, threshold_ml: float = DEFAULT_DETECTION_THRESHOLD_ML) -> bool:
    """Patient-level call: the largest predicted component is strictly larger than the threshold."""
    return largest_prediction_component_ml > threshold_ml


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")


@dataclass(frozen=True)
class DetectionScores:
    """Patient-level confusion counts and rates for one lesion prompt."""

    true_positives: int
    false_negatives: int
    true_negatives: int
    false_positives: int
    sensitivity: float
    specificity: float
    harmonic_mean: float

    def as_dict(self) -> Dict[str, float]:
        return asdict(self)


def detection_scores(calls: Iterable[Tuple[bool, bool]]) -> DetectionScores:
    """Scores from (reference_positive, predicted_positive) pairs, one per case."""
    calls = list(calls)
    tp = sum(ref and pred for ref, pred in calls)
    fn = sum(ref and not pred for ref, pred in calls)
    tn = sum(not ref and not pred for ref, pred in calls)
    fp = sum(not ref and pred for ref, pred in calls)
    sensitivity, specificity = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    if np.isnan(sensitivity) or np.isnan(specificity):
        harmonic = float("nan")
    elif sensitivity + specificity == 0:
        harmonic = 0.0
    else:
        harmonic = 2 * sensitivity * specificity / (sensitivity + specificity)
    return DetectionScores(tp, fn, tn, fp, sensitivity, specificity, harmonic)
