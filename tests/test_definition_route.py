"""Grounding's definition route (issue 21): descriptive prompts reach their structure through the real MiniLM
encoder against the RadLex definitions, at the threshold calibrated for definitions (data/definition_calibration.json)."""
from __future__ import annotations

import json

import pytest

from nnunetv2_openvocab.example_dataset import DEFAULT_STRUCTURES, example_prompts
from nnunetv2_openvocab.prompts.dataset_prompts import TrainingPrompts
from nnunetv2_openvocab.prompts.definition_route import (DEFINITION, DefinitionIndex, calibrated_definition_threshold,
                                                         reads_like_definition)
from nnunetv2_openvocab.prompts.grounding import PromptGrounder
from nnunetv2_openvocab.text.embedding_cache import PromptEmbeddingCache
from nnunetv2_openvocab.text.encoder import FrozenTextEncoder

# paraphrases of RadLex definitions, none of them the stored text, and no name of a structure
DESCRIBED = {"the organ with lobules connected to the bile ducts": ("liver",),
             "main trunk of all the systemic arteries in the body": ("aorta",),
             "the organ filtering blood to make urine and keep the ion balance": ("kidney_left", "kidney_right")}
# names (no description) of structures that have no RadLex definition: any definition they reached would be wrong
UNRELATED_NAMES = ["gluteus maximus muscle group", "iliopsoas muscle", "autochthonous back muscles",
                   "costal cartilages"]


@pytest.fixture(scope="module")
def embed(tmp_path_factory):
    return PromptEmbeddingCache.for_encoder(FrozenTextEncoder("minilm"), tmp_path_factory.mktemp("cache")).embed


@pytest.fixture(scope="module")
def threshold():
    calibrated = calibrated_definition_threshold("minilm")
    assert calibrated is not None, "data/definition_calibration.json has no threshold for minilm"
    return calibrated


def example_grounder(embed, definition_threshold):
    return PromptGrounder(TrainingPrompts.from_mapping(example_prompts(), DEFAULT_STRUCTURES), embed,
                          definition_threshold=definition_threshold)


def test_definition_like_paraphrases_reach_their_structure(embed, threshold):
    found = {g.prompt: g for g in example_grounder(embed, threshold).ground(list(DESCRIBED))}
    for prompt, labels in DESCRIBED.items():
        g = found[prompt]
        assert g.via == DEFINITION, (prompt, g.reason)
        assert set(g.labels) == set(labels), (prompt, g.labels)
        assert g.route_label.endswith("(via definition)")
        assert f"definition threshold {threshold:.2f}" in g.reason and "cosine" in g.reason


def test_without_calibration_the_same_prompts_are_ungrounded(embed):
    for g in example_grounder(embed, None).ground(list(DESCRIBED)):
        assert g.via == "" and g.ungrounded, (g.prompt, g.reason)


def test_names_of_unrelated_structures_stay_below_the_definition_threshold(embed, threshold):
    index = DefinitionIndex(embed)
    for name, row in zip(UNRELATED_NAMES, index.similarities(UNRELATED_NAMES)):
        assert float(row.max()) < threshold, (name, index.entries[int(row.argmax())], float(row.max()))
    for g in example_grounder(embed, threshold).ground(UNRELATED_NAMES):
        assert g.via == "" and not g.labels, (g.prompt, g.reason)


def test_names_do_not_read_like_definitions():
    assert not reads_like_definition("upper lobe of the left lung")  # -> left + lobe, lung, upper
    assert not reads_like_definition("both kidneys")
    assert reads_like_definition("the organ with lobules connected to the bile ducts")


def test_threshold_comes_from_the_calibration_file(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"encoders": {"minilm": {"threshold": 0.61}}}), encoding="utf-8")
    assert calibrated_definition_threshold("minilm", path) == 0.61
    assert calibrated_definition_threshold("biolord", path) is None  # uncalibrated encoder: no definition route
    assert calibrated_definition_threshold("minilm", tmp_path / "missing.json") is None
