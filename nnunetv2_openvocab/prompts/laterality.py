"""Left/right in structure names and prompts: the one place that parses sides.

Works on snake_case names (``kidney_left``, ``rib_left_1``) and on free text (``left kidney``) alike: words are
``prompt_text.words`` (runs of letters and digits), so underscores separate words too. Used by the taxonomy builder (sided structures
and their unsided parents), the prompt report (laterality warnings) and grounding (a prompt that names a side
is never answered with the other side's labels).
"""
from __future__ import annotations

from typing import FrozenSet, Iterable, Optional, Tuple

from nnunetv2_openvocab.prompts.prompt_text import words

SIDES = ("left", "right")
OPPOSITE = {"left": "right", "right": "left"}


def sides(text: str) -> FrozenSet[str]:
    """Every side the text names: 'left and right kidney' -> {'left', 'right'}."""
    return frozenset(w for w in words(text) if w in OPPOSITE)


def side_of(text: str) -> Optional[str]:
    """The one side the text names, or None when it names none or both."""
    named = sides(text)
    return next(iter(named)) if len(named) == 1 else None


def side_free_key(text: str) -> Tuple[str, ...]:
    """Words without side words: 'kidney_left', 'kidney_right' and 'Left kidney' -> ('kidney',)."""
    return tuple(w for w in words(text) if w not in OPPOSITE)


def side_twin(name: str, candidates: Iterable[str]) -> Optional[str]:
    """The candidate that differs from ``name`` only in side: side_twin('kidney_left', labels) -> 'kidney_right'."""
    side = side_of(name)
    if side is None:
        return None
    key = side_free_key(name)
    return next((other for other in candidates if side_of(other) == OPPOSITE[side] and side_free_key(other) == key),
                None)


def without_side(text: str) -> str:
    """The text with its side words dropped, original case and separators kept for the rest:
    'rib_left_1' -> 'rib_1', 'left upper lobe of lung' -> 'upper lobe of lung'."""
    separator = " " if " " in text else "_"
    return separator.join(part for part in text.split(separator) if part.lower() not in OPPOSITE)
