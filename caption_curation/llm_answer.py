"""Parse and validate an LLM's caption answer.

Expected: ``{"captions": [{"caption": str, "source_sentence": str}, ...]}``. Tolerated, because
chat models produce them often: a ```json fence or prose around the JSON, a bare list instead of the
object, and plain strings instead of caption objects. Items that are not a non-empty caption of at
most ``MAX_CAPTION_CHARS`` are dropped; an answer left with no caption is malformed.
"""
from __future__ import annotations

import json

from caption_curation.captions import Caption

MAX_CAPTION_CHARS = 400


class MalformedAnswer(ValueError):
    """The answer holds no usable captions; the message says why."""


def _first_json_value(text: str):
    decoder = json.JSONDecoder()
    for start, char in enumerate(text):
        if char in "{[":
            try:
                return decoder.raw_decode(text, start)[0]
            except ValueError:  # not JSON here, or a number longer than Python converts: try the next bracket
                continue
            except RecursionError:  # every later start lies inside the same nesting: stop here
                raise MalformedAnswer("the answer's JSON is nested too deeply to read") from None
    raise MalformedAnswer("no JSON object or list found in the answer")


def _caption_from_item(item) -> Caption | None:
    if isinstance(item, str):
        text, source = item, ""
    elif isinstance(item, dict) and isinstance(item.get("caption"), str):
        text, source = item["caption"], item.get("source_sentence")
        source = source if isinstance(source, str) else ""
    else:
        return None
    text = " ".join(text.split())
    if not text or len(text) > MAX_CAPTION_CHARS:
        return None
    return Caption(text=text, source_sentence=" ".join(source.split()))


def parse_caption_answer(answer: str) -> list[Caption]:
    if not answer or not answer.strip():
        raise MalformedAnswer("empty answer")
    value = _first_json_value(answer)
    items = value.get("captions") if isinstance(value, dict) else value
    if not isinstance(items, list):
        raise MalformedAnswer("answer JSON has no 'captions' list")
    captions: dict[str, Caption] = {}
    for item in items:
        caption = _caption_from_item(item)
        if caption is not None:
            captions.setdefault(caption.text.lower(), caption)
    if not captions:
        raise MalformedAnswer(f"none of the {len(items)} caption item(s) is a non-empty caption string")
    return list(captions.values())
