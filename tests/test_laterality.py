"""Left/right parsing, shared by the taxonomy builder, the prompt report and grounding."""
from __future__ import annotations

from nnunetv2_openvocab.prompts.laterality import side_free_key, side_of, side_twin, sides, without_side


def test_sides_of_names_and_prompts():
    assert sides("Left kidney") == {"left"} and sides("left and right lung") == {"left", "right"}
    assert sides("rib_right_3") == {"right"} and sides("leftover") == frozenset()
    assert side_of("kidney_left") == "left" and side_of("left and right lung") is None and side_of("liver") is None


def test_side_free_forms():
    assert side_free_key("kidney_left") == side_free_key("Right kidney") == ("kidney",)
    assert without_side("rib_left_1") == "rib_1" and without_side("vertebrae_L3") == "vertebrae_L3"
    assert without_side("left upper lobe of lung") == "upper lobe of lung"
    assert side_twin("kidney_left", ["liver", "kidney_right", "adrenal_gland_right"]) == "kidney_right"
    assert side_twin("liver", ["liver"]) is None and side_twin("rib_left_1", ["rib_right_2"]) is None
