"""Grounding: prompts resolved through the taxonomy to the example model's labels, with the real MiniLM encoder."""
from __future__ import annotations

import pytest

from nnunetv2_openvocab.example_dataset import DEFAULT_STRUCTURES, example_prompts
from nnunetv2_openvocab.prompts.grounding import GroundingError, PromptGrounder
from nnunetv2_openvocab.prompts.laterality import OPPOSITE, side_of
from nnunetv2_openvocab.prompts.taxonomy import load_taxonomy
from nnunetv2_openvocab.text.embedding_cache import PromptEmbeddingCache
from nnunetv2_openvocab.text.encoder import FrozenTextEncoder
from nnunetv2_openvocab.prompts.dataset_prompts import TrainingPrompts


@pytest.fixture(scope="module")
def grounder(tmp_path_factory):
    cache = PromptEmbeddingCache.for_encoder(FrozenTextEncoder("minilm"), tmp_path_factory.mktemp("cache"))
    return PromptGrounder(TrainingPrompts.from_mapping(example_prompts(), DEFAULT_STRUCTURES), cache.embed)


def by_prompt(grounder, prompts, mode="auto"):
    return {g.prompt: g for g in grounder.ground(prompts, mode)}


def test_routes_and_reasons(grounder):
    g = by_prompt(grounder, ["renal organs", "Left Kidney", "sinistral kidney", "hepatic system",
                             "left and right kidney", "left renal organ", "banana", "brain", "lumbar spine"])
    assert g["renal organs"].route == "union" and set(g["renal organs"].labels) == {"kidney_left", "kidney_right"}
    assert set(g["renal organs"].queries) == {"left kidney", "right kidney"}  # the labels' canonical prompts
    assert g["Left Kidney"].route == "label" and g["Left Kidney"].labels == ("kidney_left",)
    assert g["sinistral kidney"].queries == ("left kidney",)  # a training synonym answers with the label's query
    assert g["hepatic system"].labels == ("liver",) and "exact" in g["hepatic system"].reason
    # a conjunction of resolved parts; side words share the last noun
    assert g["left and right kidney"].route == "union"
    assert set(g["left and right kidney"].labels) == {"kidney_left", "kidney_right"}
    assert g["left renal organ"].labels == ("kidney_left",) and "nearest taxonomy entry" in g["left renal organ"].reason
    assert g["banana"].route == "text" and g["banana"].queries == ("banana",)
    assert "no taxonomy entry within cosine" in g["banana"].reason
    assert g["brain"].route == "text" and "not a training label" in g["brain"].reason
    assert g["lumbar spine"].route == "text"  # L1-L5, but the model only knows L3: no partial answer


def test_an_unlearnt_structure_cedes_to_the_labels_it_cannot_overlap(grounder):
    g = by_prompt(grounder, ["brain", "lumbar spine", "banana", "liver"])
    canonical = {label: example_prompts()[label][0] for label in DEFAULT_STRUCTURES}
    assert g["brain"].cedes_to == tuple(canonical.values()) and "cedes voxels where liver" in g["brain"].reason
    assert canonical["vertebrae_L3"] not in g["lumbar spine"].cedes_to  # L3 is part of the lumbar spine
    assert len(g["lumbar spine"].cedes_to) == len(canonical) - 1
    assert g["banana"].cedes_to == () and g["liver"].cedes_to == ()  # unknown meaning, or a learnt label
    assert all(found.cedes_to == () for found in grounder.ground(["brain", "lumbar spine"], "text"))


def test_a_sided_prompt_never_gets_the_other_sides_labels(grounder):
    taxonomy = load_taxonomy()
    sided = [t for s in taxonomy.structures.values() for t in s.prompts if side_of(t)]
    sided += ["left renal organs", "right kidneys", "left side of the spine", "kidney on the left side"]
    for g in grounder.ground(sided):
        side = side_of(g.prompt)
        assert all(side_of(label) != OPPOSITE[side] for label in g.labels), g


def test_modes(grounder):
    assert all(g.route == "text" for g in grounder.ground(["renal organs", "liver"], "text"))
    assert grounder.ground(["renal organs"], "taxonomy")[0].route == "union"
    with pytest.raises(GroundingError, match="banana"):
        grounder.ground(["renal organs", "banana"], "taxonomy")
    with pytest.raises(GroundingError, match="expected one of"):
        grounder.ground(["liver"], "fuzzy")
