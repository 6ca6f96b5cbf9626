"""Issue 11 §6: the dataset.json validator gives problems, never tracebacks, for any text; the known crashes and
silent acceptances (duplicate keys, non-string channel names, float numTraining, '²', deep nesting) are named."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnunetv2_openvocab.commands.check_dataset import main as check_dataset_main
from nnunetv2_openvocab.prompts.validation import validate_dataset, validate_dataset_json
from test_dataset_validation import VALID, make_dataset

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 5) | st.floats() | st.text(max_size=6),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20)
FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def dataset_folder(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("dataset"), VALID)


def assert_problems_not_tracebacks(folder: Path, text: str) -> None:
    (folder / "dataset.json").write_text(text, encoding="utf-8")
    problems = validate_dataset(folder)
    assert all(str(problem) and problem.fix for problem in problems)


@settings(max_examples=500, **FUZZ)
@given(key=st.sampled_from(sorted(VALID) + ["regions_class_order", "modality"]), value=json_values)
def test_any_single_field(dataset_folder, key, value):
    document = {**copy.deepcopy(VALID), key: value}
    assert_problems_not_tracebacks(dataset_folder, json.dumps(document))


@settings(max_examples=400, **FUZZ)
@given(document=json_values)
def test_any_whole_document(dataset_folder, document):
    assert_problems_not_tracebacks(dataset_folder, json.dumps(document))


@settings(max_examples=300, **FUZZ)
@given(data=st.data())
def test_any_text_edit_of_a_valid_file(dataset_folder, data):
    """Character-level damage: deleted, inserted or repeated spans of a valid dataset.json."""
    text = json.dumps(VALID)
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, min(len(text), start + 20)))
    insert = data.draw(st.sampled_from(["", "[" * 5000, "²", "\x00", "{", "\"liver\": 1, ", text[start:end]]))
    assert_problems_not_tracebacks(dataset_folder, text[:start] + insert + text[end:])


@pytest.mark.parametrize("text, field, words", [
    (json.dumps(VALID).replace('"spleen": 2', '"spleen": 2, "spleen": 3'), "spleen", "more than once"),
    ("[" * 100_000 + "]" * 100_000, "<file>", "nested too deeply"),
    (json.dumps({**VALID, "channel_names": {"²": "CT"}}), "channel_names", "channel indices"),
    (json.dumps({**VALID, "channel_names": {"0": None}}), "channel_names.0", "channel name"),
    (json.dumps({**VALID, "channel_names": {"0": 5}}), "channel_names.0", "channel name"),
    (json.dumps({**VALID, "channel_names": {"0": ["CT"]}}), "channel_names.0", "channel name"),
    (json.dumps({**VALID, "numTraining": 2.0}), "numTraining", "must be an integer"),
    (json.dumps({**VALID, "numTraining": True}), "numTraining", "must be an integer"),
])
def test_refused_with_the_field_named(dataset_folder, text, field, words):
    (dataset_folder / "dataset.json").write_text(text, encoding="utf-8")
    problems = validate_dataset(dataset_folder)
    assert any(p.field == field and words in p.problem for p in problems), [str(p) for p in problems]


def test_command_names_a_duplicate_key(tmp_path, capsys):
    folder = make_dataset(tmp_path, VALID)
    (folder / "dataset.json").write_text(json.dumps(VALID).replace('"liver": 1', '"liver": 1, "liver": 2'))
    assert check_dataset_main(["-d", str(folder)]) == 1
    assert "[liver]: the key appears more than once" in capsys.readouterr().out
    assert validate_dataset_json(VALID, folder, folder / "dataset.json") == []
