"""RadLex synonyms and definitions as a lookup source for grounding (prompts/radlex_lookup.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dataset_conversion.build_radlex_lookup import RADLEX_FILE, radlex_lookup
from nnunetv2_openvocab.prompts.grounding import LABEL, UNION, Grounding, PromptGrounder
from nnunetv2_openvocab.inference.patient_side import PatientFrame, check_answer_side
from nnunetv2_openvocab.prompts.radlex_lookup import RADLEX_LOOKUP_PATH, radlex_lookup_entries
from nnunetv2_openvocab.prompts.dataset_prompts import TrainingPrompts

LABELS = ["liver", "spleen", "kidney_left", "kidney_right", "aorta", "lung_upper_lobe_left"]
PROMPTS = {"liver": ["liver"], "spleen": ["spleen"], "kidney_left": ["left kidney"], "kidney_right": ["right kidney"],
           "aorta": ["aorta"], "lung_upper_lobe_left": ["left upper lung lobe"]}


def no_encoder(texts):
    raise AssertionError(f"a RadLex text must not need the text encoder: {texts}")


@pytest.mark.skipif(not RADLEX_FILE.is_file(), reason="../shared/data/radlex is not here")
def test_the_shipped_file_is_what_the_generator_makes():
    assert json.loads(RADLEX_LOOKUP_PATH.read_text(encoding="utf-8")) == radlex_lookup(RADLEX_FILE)


def test_latin_german_abbreviations_and_definitions_reach_their_structure():
    definition = next(text for text, name, kind in radlex_lookup_entries() if name == "aorta" and kind == "definition")
    found = {g.prompt: g for g in PromptGrounder(TrainingPrompts.from_mapping(PROMPTS, LABELS), no_encoder).ground(
        ["ren", "Milz", "the nephros", "LUL", definition])}
    assert (found["ren"].route, found["ren"].labels) == (UNION, ("kidney_left", "kidney_right"))
    assert found["the nephros"].labels == ("kidney_left", "kidney_right")
    assert (found["Milz"].route, found["Milz"].labels) == (LABEL, ("spleen",))
    assert found["LUL"].labels == ("lung_upper_lobe_left",)
    assert found[definition].labels == ("aorta",)


def test_a_structure_sided_by_lookup_is_side_checked():
    grounding = Grounding("LUL", LABEL, ("lung_upper_lobe_left",), ("left upper lung lobe",), "lung_upper_lobe_left",
                          "")
    mask = np.zeros((2, 2, 10), np.uint8)
    mask[..., :3] = 1  # low indices: the patient's right in this frame
    frame = PatientFrame(2, 1, 4.5, 1.0)
    _, _, check = check_answer_side("LUL", grounding, mask, None, frame, copy=False)
    assert check.side == "left" and check.status == "emptied" and not mask.any()
