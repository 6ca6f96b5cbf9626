"""Split report text into sentences; bullets ("•") and line breaks always end a sentence."""
from __future__ import annotations

import re

_BREAK = re.compile(r"(?<=[.!?])\s+|\s*[•\n]+\s*")
# a full stop after these does not end the sentence ("approx. 3 cm", "e.g. nodules")
_ABBREVIATIONS = {"e.g.", "i.e.", "vs.", "approx.", "dr.", "cf.", "fig.", "max.", "min."}


def split_sentences(text: str) -> list[str]:
    sentences: list[str] = []
    for piece in _BREAK.split(text):
        piece = piece.strip(' "\t')
        if not piece:
            continue
        if sentences and sentences[-1].rsplit(" ", 1)[-1].lower() in _ABBREVIATIONS:
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return sentences
