"""Tag text with the organs and tissues it names, from the lexicon in data/organ_lexicon.json.

Used by the offline decomposer (which sentences are organ-level) and by the statistics (organ
distribution of the kept captions, whichever backend wrote them).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from caption_curation.term_matcher import PhraseMatcher

LEXICON_PATH = Path(__file__).resolve().parent / "data" / "organ_lexicon.json"


class AnatomyTagger:
    def __init__(self, organs: dict[str, list[str]], anaphora_cues: list[str]):
        self._organs = PhraseMatcher((form, organ) for organ, forms in organs.items() for form in [organ, *forms])
        self._cues = PhraseMatcher((cue, cue) for cue in anaphora_cues)

    @classmethod
    def from_file(cls, path: str | Path = LEXICON_PATH) -> "AnatomyTagger":
        lexicon = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(lexicon["organs"], lexicon["anaphora_cues"])

    def organs(self, text: str) -> list[str]:
        """Organ names in order of first mention; the longest surface form wins where forms overlap."""
        return self._organs.longest_matches(text)

    def continues_previous(self, text: str) -> bool:
        """True for organ-less sentences that read as more findings on the organ just described."""
        return bool(self._cues.all_matches(text))


@lru_cache(maxsize=1)
def default_tagger() -> AnatomyTagger:
    return AnatomyTagger.from_file()
