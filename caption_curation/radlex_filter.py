"""MetaCLIP-style caption filter: keep a caption when it contains at least one RadLex term.

Matching is case-insensitive and on whole words (see term_matcher), through one Aho-Corasick
automaton, so its cost grows with the caption length, not with the ~45k terms. RadLex names are
singular, reports are not: a term also matches with its last word in a regular English or Latin
plural ("lymph nodes", "vertebrae", "bronchi", "metastases"), and is recorded in its RadLex form.
"""
from __future__ import annotations

import re
from itertools import chain
from pathlib import Path
from typing import Iterator, Sequence

from caption_curation.radlex_terms import load_radlex_terms
from caption_curation.term_matcher import PhraseMatcher


# (singular ending, plural ending) for the last word; "" matches any word ("+s")
_PLURAL_RULES = (
    (re.compile(r"[^aeiou]y$"), "y", "ies"),
    (re.compile(r"is$"), "is", "es"),
    (re.compile(r"us$"), "us", "i"),
    (re.compile(r"um$"), "um", "a"),
    (re.compile(r"a$"), "a", "ae"),
    (re.compile(r"(s|x|z|ch|sh)$"), "", "es"),
)


def plural_forms(term: str) -> Iterator[str]:
    """Plausible plurals of ``term`` (its last word inflected); may include non-words, which never match."""
    yield term + "s"
    for pattern, singular, plural in _PLURAL_RULES:
        if pattern.search(term):
            yield term[: len(term) - len(singular)] + plural


class RadLexFilter:
    def __init__(self, terms: Sequence[str]):
        # exact terms first, so a RadLex term that is itself a plural keeps its own name
        exact = ((term, term) for term in terms)
        plurals = ((plural, term) for term in terms for plural in plural_forms(term.lower()))
        self._matcher = PhraseMatcher(chain(exact, plurals))
        self.n_terms = len(terms)

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> "RadLexFilter":
        """From a RadLex export (see radlex_terms), or the shipped default list when path is None."""
        return cls(load_radlex_terms(path))

    def matched_terms(self, caption: str) -> list[str]:
        """Every RadLex term found in the caption, in order of first occurrence; [] means: drop it."""
        return self._matcher.all_matches(caption)
