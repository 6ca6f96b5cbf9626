"""Prompt normalisation (prompts/normalisation.py): one test per rule, and its use by grounding and DICOM-SEG
coding."""
from __future__ import annotations

import pytest
import torch

from nnunetv2_openvocab.prompts.grounding import LABEL, TEXT, UNION, PromptGrounder
from nnunetv2_openvocab.prompts.normalisation import normalise_prompt, normalised_index, prompt_side, singular
from nnunetv2_openvocab.prompts.dataset_prompts import TrainingPrompts

VOCABULARY = frozenset({"kidney", "vertebra", "artery", "pancreas", "iliopsoas", "lung", "lobe", "upper"})


def key(text):
    return normalise_prompt(text, VOCABULARY).key


def test_rule1_case_punctuation_and_hyphens():
    assert key("Left-Kidney") == key("left kidney") == ("left", ("kidney",))


@pytest.mark.parametrize("text", ["both kidneys", "bilateral kidneys", "paired kidneys", "left and right kidney",
                                  "right and left kidneys", "each kidney"])
def test_rule2_both_sides_name_no_single_side(text):
    normalised = normalise_prompt(text, VOCABULARY)
    assert normalised.both_sides and normalised.side is None and normalised.words == ("kidney",)


@pytest.mark.parametrize("text, side", [("left kidney", "left"), ("kidney on the left side", "left"),
                                        ("left-sided kidney", "left"), ("kidney situated on the right", "right"),
                                        ("sinistral kidney", "left"), ("kidney dexter", "right"),
                                        ("L kidney", "left"), ("kidney, R", "right"), ("kidney of the left", "left"),
                                        ("kidney located to the right side", "right")])
def test_rule3_side_phrasings_become_one_side_marker(text, side):
    normalised = normalise_prompt(text, VOCABULARY)
    assert normalised.side == side and not normalised.both_sides
    assert "kidney" in normalised.words and not {"on", "side", "sided", "situated", "located", "to"} & set(
        normalised.words)


def test_rule3_single_letters_are_sides_only_beside_a_structure():
    assert prompt_side("L3 vertebra") is None and prompt_side("L 3 vertebra") is None
    assert normalise_prompt("l", VOCABULARY).words == ("l",)
    assert prompt_side("on the table") is None  # locatives are dropped only with a side: nothing to drop here
    assert normalise_prompt("kidney in situ", VOCABULARY).words == ("in", "kidney", "situ")


def test_rule4_determiners_and_quantifiers_carry_no_anatomy():
    assert key("the kidney") == key("a kidney") == key("all kidneys") == key("the two kidneys") == (None, ("kidney",))


def test_rule5_plurals_become_singular_only_into_known_words():
    assert [singular(w, VOCABULARY) for w in ("kidneys", "vertebrae", "arteries", "pancreas", "iliopsoas",
                                              "bananas")] == ["kidney", "vertebra", "artery", "pancreas",
                                                              "iliopsoas", "bananas"]


def test_rule6_word_order():
    assert key("upper lobe of the left lung") == key("left upper lobe of lung") == key("lung, left, upper lobe")
    assert key("kidney, left") == key("left kidney")


def test_index_leaves_out_keys_two_structures_share():
    index = normalised_index([("left kidney", "kidney_left"), ("kidney on the left", "kidney_left"),
                              ("lobe upper", "a"), ("upper lobe", "b")])
    assert index[("left", ("kidney",))] == "kidney_left"
    assert ("lobe", "upper") not in {words for _, words in index}


def embed_never(texts):
    raise AssertionError(f"normalised prompts must not need the text encoder: {texts}")


def test_grounding_resolves_paraphrases_without_the_text_encoder():
    labels = ["liver", "kidney_left", "kidney_right", "lung_upper_lobe_left", "lung_lower_lobe_left"]
    prompts = {"liver": ["liver"], "kidney_left": ["left kidney"], "kidney_right": ["right kidney"],
               "lung_upper_lobe_left": ["left upper lung lobe"], "lung_lower_lobe_left": ["left lower lung lobe"]}
    grounder = PromptGrounder(TrainingPrompts.from_mapping(prompts, labels), embed_never)
    found = {g.prompt: g for g in grounder.ground(["both kidneys", "the two kidneys", "kidney on the left side",
                                                   "right-sided kidney", "dextral kidney", "kidney, R",
                                                   "upper lobe of the left lung", "the left lungs"])}
    assert found["both kidneys"].route == UNION and found["both kidneys"].labels == ("kidney_left", "kidney_right")
    assert found["the two kidneys"].labels == ("kidney_left", "kidney_right")
    assert (found["kidney on the left side"].route, found["kidney on the left side"].labels) == (LABEL,
                                                                                                ("kidney_left",))
    for prompt in ("right-sided kidney", "dextral kidney", "kidney, R"):
        assert found[prompt].labels == ("kidney_right",), prompt
    assert found["upper lobe of the left lung"].labels == ("lung_upper_lobe_left",)
    assert found["the left lungs"].labels == ("lung_upper_lobe_left", "lung_lower_lobe_left")


def test_a_sided_paraphrase_never_takes_the_other_side_on_the_nearest_route():
    labels = ["kidney_left", "kidney_right"]
    prompts = {"kidney_left": ["left kidney"], "kidney_right": ["right kidney"]}
    grounder = PromptGrounder(TrainingPrompts.from_mapping(prompts, labels), lambda texts: torch.ones(len(texts), 4), match_threshold=0.5)
    grounding = grounder.ground(["sinistral renal thing"])[0]  # every entry ties: only the side may decide
    assert grounding.route != TEXT and grounding.labels == ("kidney_left",)


def test_dicom_seg_codes_follow_normalisation():
    pytest.importorskip("highdicom")
    from nnunetv2_openvocab.inference.outputs.segment_coding import segment_codes
    assert segment_codes("kidney on the left side")[1].value == segment_codes("left kidney")[1].value
    assert segment_codes("both kidneys")[1].value == segment_codes("kidney")[1].value
    assert segment_codes("banana")[1].value == "91723000"


def test_an_ungrounded_prompt_lists_its_nearest_structures_and_taxonomy_mode_refuses_it():
    from nnunetv2_openvocab.prompts.grounding import GroundingError
    labels, prompts = ["kidney_left"], {"kidney_left": ["left kidney"]}
    grounder = PromptGrounder(TrainingPrompts.from_mapping(prompts, labels), lambda texts: torch.eye(len(texts), 8 + len(texts)))  # all orthogonal
    grounding = grounder.ground(["zebra crossing"])[0]
    assert grounding.route == TEXT and grounding.ungrounded and grounding.structure is None
    assert len(grounding.nearest) == 3 and all(score == 0.0 for _, score in grounding.nearest)
    assert all(name in grounding.reason for name, _ in grounding.nearest)
    assert not grounder.ground(["left kidney"])[0].ungrounded
    with pytest.raises(GroundingError, match="zebra crossing"):
        grounder.ground(["zebra crossing"], mode="taxonomy")
