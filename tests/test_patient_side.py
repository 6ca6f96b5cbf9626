"""Side safety (inference/patient_side.py) on the bundled CT and its TotalSegmentator labels, also flipped and
re-oriented (the trained model's answers: test_side_safe_prediction.py).

The patient side of a mask is judged independently of the module (tests/patient_geometry.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_openvocab.example_dataset import CLASS_MAP, EXAMPLE_CT, EXAMPLE_SEGMENTATION
from nnunetv2_openvocab.inference.input_images import sitk_image_to_case_arrays
from nnunetv2_openvocab.inference.patient_side import (EMPTIED, NOT_CHECKED, PASSED, TRIMMED, check_side,
                                                       crosses_midline_little, left_direction, patient_frame,
                                                       trim_label_mask)
from nnunetv2_openvocab.prompts.laterality import side_of
from nnunetv2_openvocab.prompts.taxonomy import load_taxonomy
from patient_geometry import flipped, majority_on_other_side, reoriented

SIDED = ("kidney_left", "kidney_right", "adrenal_gland_left", "femur_left", "femur_right", "hip_left", "hip_right",
         "gluteus_maximus_left", "iliopsoas_right", "rib_left_11", "lung_lower_lobe_right", "iliac_artery_right")


@pytest.fixture(scope="module")
def ct_and_labels():
    image, labels = sitk.ReadImage(str(EXAMPLE_CT)), sitk.ReadImage(str(EXAMPLE_SEGMENTATION))
    labels.CopyInformation(image)
    ids = {name: int(i) for i, name in json.loads(CLASS_MAP.read_text(encoding="utf-8")).items()}
    return image, labels, ids


def frame_and_masks(image: sitk.Image, labels: sitk.Image, ids: dict):
    data, properties = sitk_image_to_case_arrays(image)
    array = sitk.GetArrayFromImage(labels)
    return patient_frame(data[0], properties), {name: (array == ids[name]).astype(np.uint8) for name in SIDED}


def test_left_direction_follows_the_direction_cosines(ct_and_labels):
    image = ct_and_labels[0]  # RAS NIfTI: LPS direction diag(-1, -1, 1), x index grows towards the right
    assert left_direction(sitk_image_to_case_arrays(image)[1]) == (2, -1)
    assert left_direction(sitk_image_to_case_arrays(flipped(image))[1]) == (2, 1)
    assert left_direction(sitk_image_to_case_arrays(reoriented(image))[1]) == (2, 1)
    assert left_direction({"spacing": [3, 3, 3]}) is None
    affine = np.diag([-3.0, 3.0, 3.0, 1.0])  # nibabel RAS affine: voxel x grows towards the patient's left
    assert left_direction({"nibabel_stuff": {"original_affine": affine}}) == (2, 1)


@pytest.mark.parametrize("transform", [lambda image: image, flipped], ids=["as is", "flipped"])
def test_reference_masks_pass_on_their_side_and_are_emptied_on_the_other(ct_and_labels, transform):
    image, labels, ids = ct_and_labels
    image, labels = transform(image), transform(labels)
    labels.CopyInformation(image)
    frame, masks = frame_and_masks(image, labels, ids)
    for name, mask in masks.items():
        side = side_of(name)
        assert not majority_on_other_side(image, mask, side), name  # the independent judge agrees with the labels
        own = check_side(mask.copy(), side, frame, crosses_midline_little(load_taxonomy(), name))
        assert own.status in (PASSED, TRIMMED) and own.voxels_removed <= 0.01 * own.voxels, (name, own)
        other_side = {"left": "right", "right": "left"}[side]
        wrong = mask.copy()
        check = check_side(wrong, other_side, frame, True)
        assert check.status == EMPTIED and not wrong.any(), (name, check)


def test_reoriented_image_moves_the_patient_side_not_the_array(ct_and_labels):
    """Same voxels, mirrored direction cosines: the left kidney's voxels now lie on the patient's right."""
    image, labels, ids = ct_and_labels
    left_kidney = (sitk.GetArrayFromImage(labels) == ids["kidney_left"]).astype(np.uint8)
    data, properties = sitk_image_to_case_arrays(reoriented(image))
    frame = patient_frame(data[0], properties)
    assert majority_on_other_side(reoriented(image), left_kidney, "left")
    assert check_side(left_kidney.copy(), "left", frame, True).status == EMPTIED
    assert check_side(left_kidney.copy(), "right", frame, True).status == PASSED


def test_a_stray_blob_beyond_the_midline_is_dropped_for_kidneys_only(ct_and_labels):
    image, labels, ids = ct_and_labels
    frame, masks = frame_and_masks(image, labels, ids)
    right = masks["kidney_right"]
    left = masks["kidney_left"]
    blob = left * (np.cumsum(left.ravel()).reshape(left.shape) <= 200)  # 200 voxels of the left kidney
    stray = np.maximum(right, blob)
    trimmed = stray.copy()
    check = check_side(trimmed, "right", frame, crosses_midline_little(load_taxonomy(), "kidney_right"))
    assert check.status == TRIMMED and check.voxels_removed == 200
    np.testing.assert_array_equal(trimmed, right)
    kept = stray.copy()  # a vessel may cross the midline: majority check only
    assert check_side(kept, "right", frame, crosses_midline_little(load_taxonomy(), "iliac_artery_right")).status \
        == PASSED
    np.testing.assert_array_equal(kept, stray)


def test_crosses_midline_little():
    taxonomy = load_taxonomy()
    assert all(crosses_midline_little(taxonomy, name) for name in ("kidney_left", "lung_right", "femur_left",
                                                                   "rib_right_3", "gluteus_maximus_left", "hip_right"))
    assert not any(crosses_midline_little(taxonomy, name) for name in (
        "liver", "iliac_artery_left", "brachiocephalic_vein_left", "heart_ventricle_right", None, "not_a_structure"))


def test_no_orientation_or_no_midline_is_reported_not_guessed(ct_and_labels):
    image, labels, ids = ct_and_labels
    data, _ = sitk_image_to_case_arrays(image)
    mask = (sitk.GetArrayFromImage(labels) == ids["kidney_left"]).astype(np.uint8)
    no_direction = patient_frame(data[0], {"spacing": [3.0, 3.0, 3.0]})
    assert check_side(mask, "left", no_direction, True).status == NOT_CHECKED
    inside_body = data[0][:, 30:70, 40:80]  # a crop inside the body: no air at its sides
    crop_frame = patient_frame(inside_body, sitk_image_to_case_arrays(image)[1])
    assert not crop_frame.known and "midline" in crop_frame.reason
    assert mask.any()  # not-checked masks are left as they are


def test_a_sided_labels_own_mask_is_trimmed_but_never_emptied(ct_and_labels):
    image, labels, ids = ct_and_labels
    frame, masks = frame_and_masks(image, labels, ids)
    left, right = masks["kidney_left"], masks["kidney_right"]
    blob = right * (np.cumsum(right.ravel()).reshape(right.shape) <= 150)
    mask = np.maximum(left, blob)
    assert trim_label_mask("kidney_left", mask, None, frame) == 150
    np.testing.assert_array_equal(mask, left)
    wrong_side = right.copy()  # mostly beyond the midline: left to the prompt's own check (a union may need it)
    assert trim_label_mask("kidney_left", wrong_side, None, frame) == 0
    np.testing.assert_array_equal(wrong_side, right)
    assert trim_label_mask("liver", left.copy(), None, frame) == 0
