"""Grounding's held-out option (the unseen-prompt benchmark's grounded column): no prompt of the evaluated set is
grounded by finding its own text or its recorded synonyms in the taxonomy, with the real MiniLM encoder."""
from __future__ import annotations

import re

import pytest

from nnunetv2_openvocab.example_dataset import DEFAULT_STRUCTURES, example_prompts
from nnunetv2_openvocab.prompts.dataset_prompts import TrainingPrompts
from nnunetv2_openvocab.prompts.grounding import PromptGrounder, held_out_identities
from nnunetv2_openvocab.prompts.prompt_text import prompt_identity
from nnunetv2_openvocab.prompts.taxonomy import load_taxonomy
from nnunetv2_openvocab.prompts.unseen_sets import load_unseen_set
from nnunetv2_openvocab.text.embedding_cache import PromptEmbeddingCache
from nnunetv2_openvocab.text.encoder import FrozenTextEncoder

NEAREST = re.compile(r"nearest taxonomy entry '(?P<text>[^']*)'")
SETS = ("example", "totalsegmentator_synonyms", "totalsegmentator_merged")


@pytest.fixture(scope="module")
def embed(tmp_path_factory):
    return PromptEmbeddingCache.for_encoder(FrozenTextEncoder("minilm"), tmp_path_factory.mktemp("cache")).embed


@pytest.fixture(scope="module")
def training():
    return TrainingPrompts.from_mapping(example_prompts(), DEFAULT_STRUCTURES)


@pytest.mark.parametrize("set_name", SETS)
def test_no_prompt_of_the_set_finds_itself_or_its_recorded_synonyms(set_name, embed, training):
    prompts = [entry["prompt"] for entry in load_unseen_set(set_name)["prompts"]]
    plain = PromptGrounder(training, embed).ground(prompts)
    # without the hold-out the taxonomy answers most prompts by looking up their own stored text
    assert any("(exact match)" in g.reason for g in plain)
    grounder = PromptGrounder(training, embed, held_out=prompts)
    held = held_out_identities(prompts, load_taxonomy(), training)
    assert {prompt_identity(p) for p in prompts} <= held
    assert not any(prompt_identity(text) in held for text, _ in grounder.entries)
    for g in grounder.ground(prompts):
        assert not g.reason.startswith(("taxonomy entry", "training prompt")), g
        nearest = NEAREST.match(g.reason)
        assert nearest is None or prompt_identity(nearest["text"]) not in held, g


def test_training_prompts_of_the_model_stay_available(embed, training):
    held = held_out_identities(["hepatic system"], load_taxonomy(), training)
    assert "hepatic system" in held and "liver" not in held  # the model trained on 'liver': not an answer key
    grounded = PromptGrounder(training, embed, held_out=["hepatic system"]).ground(["hepatic system", "liver"])
    assert grounded[1].route == "label" and grounded[1].labels == ("liver",)
    assert "exact match" not in grounded[0].reason
