"""The prompt text rules shared by validation, the embedding cache, the report, prediction and evaluation."""
from __future__ import annotations

import pytest

from nnunetv2_openvocab.prompts.prompt_text import (PromptTextError, clean_prompt, prompt_file_name, prompt_identity,
                                                    prompt_slug, slug_collisions)


def test_cleaning_identity_and_slug():
    assert clean_prompt("  left kidney \n") == "left kidney"
    assert prompt_identity(" Left \t Kidney ") == "left kidney" == prompt_identity("left-kidney.")
    assert prompt_identity("  Kidney_Left, ") == "kidney left"  # underscores and punctuation are not words
    assert prompt_identity("Rein GAUCHE (kidney)") == "rein gauche kidney" and prompt_identity("肝脏") == "肝脏"
    assert prompt_slug("Left kidney (cortex)") == "left_kidney_cortex"
    assert prompt_file_name("case_1", "Renal organs") == "case_1_renal_organs.nii.gz"
    for bad in ("", "   ", None, 3):
        with pytest.raises(PromptTextError, match="empty or not text"):
            clean_prompt(bad)
    with pytest.raises(PromptTextError, match="no letters or digits"):
        prompt_slug("?!")


def test_slug_collisions_name_both_prompts_but_not_repeats():
    assert slug_collisions(["liver", "liver", "spleen"]) == []
    assert slug_collisions(["liver", "Liver", "left-kidney", "left kidney"]) == [
        ("liver", "Liver", "liver"), ("left-kidney", "left kidney", "left_kidney")]
