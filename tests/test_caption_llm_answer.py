"""parse_caption_answer: structured-output parsing and validation of LLM caption answers."""
import json

import pytest

from caption_curation.captions import Caption
from caption_curation.llm_answer import MAX_CAPTION_CHARS, MalformedAnswer, parse_caption_answer


def test_parses_the_requested_object():
    answer = json.dumps({"captions": [{"caption": "No pleural effusion", "source_sentence": "No pleural effusion."}]})
    assert parse_caption_answer(answer) == [Caption("No pleural effusion", "No pleural effusion.")]


def test_tolerates_fences_prose_bare_lists_and_plain_strings():
    answer = 'Sure, here they are:\n```json\n["Normal liver", {"caption": "Small  left kidney cyst"}]\n```'
    assert parse_caption_answer(answer) == [Caption("Normal liver", ""), Caption("Small left kidney cyst", "")]


def test_drops_invalid_items_and_repeats():
    items = [{"caption": ""}, {"caption": 3}, None, "x" * (MAX_CAPTION_CHARS + 1), "Emphysema", "emphysema"]
    assert [c.text for c in parse_caption_answer(json.dumps({"captions": items}))] == ["Emphysema"]


@pytest.mark.parametrize(
    "answer, reason",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("The liver is normal.", "no JSON"),
        ('{"captions": "liver"}', "no 'captions' list"),
        ('{"result": []}', "no 'captions' list"),
        ('{"captions": []}', "none of the 0"),
        ('{"captions": [{"text": "liver"}]}', "none of the 1"),
        ('{"captions": [', "no JSON"),
    ],
)
def test_malformed_answers_say_why(answer, reason):
    with pytest.raises(MalformedAnswer, match=reason):
        parse_caption_answer(answer)
