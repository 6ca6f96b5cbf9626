"""Issue 22 §6: fuzz every JSON input of ours with hypothesis (1,000 examples each): nesting depth, integers longer
than Python converts, wrong types under the expected keys, truncated text. The parsing functions are called
directly (no subprocess); each may only raise the one-line user errors (``USER_ERRORS``), never a traceback.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caption_curation.caption_prompt import CaptionPrompt
from caption_curation.chat_client import ChatCompletionsClient, MalformedChatResponse
from caption_curation.llm_answer import MalformedAnswer, parse_caption_answer
from nnunetv2_openvocab.evaluation.compare import load_evaluation
from nnunetv2_openvocab.evaluation.prompt_sets import load_prompt_set
from nnunetv2_openvocab.evaluation.unseen_prompts import applicable_entries, load_unseen_prompt_set
from nnunetv2_openvocab.inference.embedding_export import read_prompts_file
from nnunetv2_openvocab.inference.model_loading import load_trained_model
from nnunetv2_openvocab.inference.outputs.run_settings import SHARED_SETTINGS, merged_settings
from nnunetv2_openvocab.inference.prompt_jobs import load_prompts_file, validate_prompts
from nnunetv2_openvocab.pretraining.config import TrainConfig, load_config
from nnunetv2_openvocab.prompts.validation import validate_dataset
from nnunetv2_openvocab.user_errors import USER_ERRORS

EXAMPLES = settings(max_examples=1000, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])
SCALARS = (st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False)
           | st.text(max_size=12))


def json_texts(keys: list) -> st.SearchStrategy:
    """JSON text built around ``keys`` (so wrong types reach the checks behind them), then maybe nested deeply,
    given a huge integer, or truncated."""
    values = st.recursive(SCALARS, lambda children: st.lists(children, max_size=4)
                          | st.dictionaries(st.sampled_from(keys) | st.text(max_size=6), children, max_size=5),
                          max_leaves=24)
    plain = values.map(json.dumps)
    nested = st.builds(lambda text, depth, key: '{"%s": %s%s%s}' % (key, "[" * depth, text, "]" * depth),
                       plain, st.integers(1, 3000), st.sampled_from(keys))
    huge = st.builds(lambda text, digits: text.replace("null", "9" * digits, 1) if "null" in text
                     else '{"%s": %s}' % (keys[0], "9" * digits), plain, st.integers(4000, 6000))
    truncated = st.builds(lambda text, cut: text[:cut], plain, st.integers(0, 40))
    return st.one_of(plain, nested, huge, truncated)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def fails_cleanly(call, allowed=USER_ERRORS) -> None:
    try:
        call()
    except allowed:
        pass


@EXAMPLES
@given(json_texts(["jobs", "image", "case", "prompts"]))
def test_predict_prompts_file(folder, text):
    path = folder / "jobs.json"
    path.write_text(text, encoding="utf-8")
    fails_cleanly(lambda: load_prompts_file(path, ".nii.gz", ("liver",)))


@EXAMPLES
@given(json_texts(["jobs", "prompts", "image"]))
def test_embed_prompts_file(folder, text):
    path = folder / "embed.json"
    path.write_text(text, encoding="utf-8")
    fails_cleanly(lambda: validate_prompts(read_prompts_file(path), str(path)))


@EXAMPLES
@given(json_texts(["labels", "background", "liver", "channel_names", "0", "numTraining", "file_ending",
                   "text_prompts", "annotated_labels", "regions_class_order", "case_0"]))
def test_dataset_json_gives_problems_never_exceptions(folder, text):
    dataset = folder / "Dataset501_Fuzz"
    for sub in ("imagesTr", "labelsTr"):
        (dataset / sub).mkdir(parents=True, exist_ok=True)
    (dataset / "dataset.json").write_text(text, encoding="utf-8")
    assert isinstance(validate_dataset(dataset), list)


@EXAMPLES
@given(json_texts(["name", "description", "prompts", "prompt", "targets", "kind", "category"]))
def test_evaluate_prompts_file(folder, text):
    path = folder / "prompt_set.json"
    path.write_text(text, encoding="utf-8")
    fails_cleanly(lambda: load_prompt_set(path, ("liver", "kidney_left")))


@EXAMPLES
@given(json_texts(["name", "prompts", "prompt", "targets", "kind"]))
def test_eval_unseen_set(folder, text):
    path = folder / "unseen.json"
    path.write_text(text, encoding="utf-8")
    fails_cleanly(lambda: applicable_entries(load_unseen_prompt_set(path)[0], ("liver",)))


@EXAMPLES
@given(json_texts(["settings", "prompts", "per_case", "case", "prompt", "status", "dice", "nsd", "table2",
                   "categories", "tolerance_mm"]))
def test_compare_summary(folder, text):
    evaluation = folder / "evaluation"
    evaluation.mkdir(exist_ok=True)
    (evaluation / "summary.json").write_text(text, encoding="utf-8")
    fails_cleanly(lambda: load_evaluation(evaluation))


@EXAMPLES
@given(json_texts(["configurations", "dataset_name", "plans_name", "labels", "file_ending"]),
       st.sampled_from(["plans.json", "dataset.json"]))
def test_model_plans_and_dataset_json(folder, text, name):
    model = folder / "model"
    model.mkdir(exist_ok=True)
    (model / "plans.json").write_text("{}", encoding="utf-8")
    (model / "dataset.json").write_text("{}", encoding="utf-8")
    (model / name).write_text(text, encoding="utf-8")
    fails_cleanly(lambda: load_trained_model(model))


@EXAMPLES
@given(json_texts(["cases", "prompts", "inputs", *SHARED_SETTINGS]))
def test_earlier_prediction_settings(folder, text):
    path = folder / "prediction_settings.json"
    path.write_text(text, encoding="utf-8")
    fails_cleanly(lambda: merged_settings(path, {**dict.fromkeys(SHARED_SETTINGS), "cases": {}}))


@EXAMPLES
@given(json_texts(["batch_size", "steps", "learning_rate", "seed"]))
def test_pretraining_config(folder, text):
    path = folder / "train_config.json"
    path.write_text(text, encoding="utf-8")
    fails_cleanly(lambda: load_config(TrainConfig, path))


@EXAMPLES
@given(json_texts(["version", "instruction", "answer_format", "examples", "report", "answer"]))
def test_caption_prompt_file(folder, text):
    path = folder / "caption_prompt.json"
    path.write_text(text, encoding="utf-8")
    fails_cleanly(lambda: CaptionPrompt.load(path))


@EXAMPLES
@given(json_texts(["captions", "caption", "source_sentence"]), st.text(max_size=8))
def test_llm_caption_answer(text, prose):
    fails_cleanly(lambda: parse_caption_answer(prose + text), MalformedAnswer)


@EXAMPLES
@given(json_texts(["choices", "message", "content"]))
def test_llm_server_body(text):
    client = ChatCompletionsClient("http://127.0.0.1:9", "model")
    fails_cleanly(lambda: client._content_of(text.encode()), MalformedChatResponse)
