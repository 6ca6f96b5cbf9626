"""Per-case Dice / volumes / components and patient-level detection scores on handcrafted masks."""
import math

import numpy as np
import pytest

from nnunetv2_openvocab.evaluation.metrics import (
    detection_scores, dice_coefficient, evaluate_binary_case, is_detected, largest_component_volume_ml,
)


def box(shape, *slices):
    mask = np.zeros(shape, bool)
    mask[slices] = True
    return mask


def test_dice_known_values_and_empty_rules():
    a = box((10, 10, 10), slice(0, 4), slice(0, 5), slice(0, 5))  # 100 voxels
    b = box((10, 10, 10), slice(2, 6), slice(0, 5), slice(0, 5))  # 100 voxels, 50 shared
    empty = np.zeros_like(a)
    assert dice_coefficient(a, a) == 1.0
    assert dice_coefficient(a, b) == pytest.approx(0.5)
    assert dice_coefficient(a, ~a) == 0.0
    assert dice_coefficient(a, empty) == 0.0
    assert math.isnan(dice_coefficient(empty, empty))


def test_largest_component_volume_uses_spacing_and_26_connectivity():
    mask = box((20, 20, 20), slice(0, 2), slice(0, 2), slice(0, 2))  # 8 voxels
    mask[5:8, 5:8, 5:8] = True  # 27 voxels
    mask[8, 8, 8] = True  # touches the 27-voxel block only at a corner: same 26-connected component
    spacing = (2.0, 1.0, 0.5)  # 1 mm^3 per voxel
    assert largest_component_volume_ml(mask, spacing) == pytest.approx(28 / 1000)
    assert largest_component_volume_ml(np.zeros_like(mask), spacing) == 0.0


def test_evaluate_binary_case_reports_volumes_in_ml():
    reference = box((12, 12, 12), slice(2, 8), slice(2, 8), slice(2, 8))
    metrics = evaluate_binary_case(reference, reference, (1.0, 1.0, 2.0), tolerance_mm=1.0)
    assert metrics.dice == 1.0 and metrics.nsd == 1.0
    assert metrics.reference_ml == metrics.prediction_ml == pytest.approx(216 * 2 / 1000)
    assert metrics.largest_prediction_component_ml == pytest.approx(216 * 2 / 1000)


def test_detection_uses_the_largest_component_not_the_total_volume():
    speckle = np.zeros((30, 30, 30), bool)
    speckle[::3, ::3, ::3] = True  # 1000 isolated voxels: 1 ml in total, 0.001 ml each
    assert not is_detected(largest_component_volume_ml(speckle, (1, 1, 1)), threshold_ml=0.1)
    assert is_detected(0.11, threshold_ml=0.1) and not is_detected(0.1, threshold_ml=0.1)


def test_detection_scores_on_a_handcrafted_cohort():
    # 4 tumour cases (3 found), 5 normal cases (1 false alarm)
    calls = [(True, True)] * 3 + [(True, False)] + [(False, False)] * 4 + [(False, True)]
    scores = detection_scores(calls)
    assert (scores.true_positives, scores.false_negatives, scores.true_negatives, scores.false_positives) == \
        (3, 1, 4, 1)
    assert scores.sensitivity == pytest.approx(0.75)
    assert scores.specificity == pytest.approx(0.8)
    assert scores.harmonic_mean == pytest.approx(2 * 0.75 * 0.8 / 1.55)


def test_detection_scores_without_negatives_or_with_all_wrong():
    only_positives = detection_scores([(True, True), (True, False)])
    assert only_positives.sensitivity == 0.5
    assert math.isnan(only_positives.specificity) and math.isnan(only_positives.harmonic_mean)
    all_wrong = detection_scores([(True, False), (False, True)])
    assert all_wrong.sensitivity == all_wrong.specificity == all_wrong.harmonic_mean == 0.0
