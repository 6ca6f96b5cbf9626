"""Rule-based decomposition of a report into organ-level captions: the no-LLM backend and baseline.

Each sentence becomes one caption, kept word for word apart from two trims, so a negation such as
"No pleural effusion was detected" always stays a negative finding:
- a lead-in ending in ";" or ":" ("When examined in the lung parenchyma window; ...") is dropped when
  the rest names every organ the lead-in names (and at least one) and the lead-in holds no negation;
- the final full stop is dropped.
A sentence that names no organ but reads as more findings on the previous one ("No space-occupying
lesion was detected." after a spleen sentence) is appended to the previous caption, at most
``max_attached`` times, so the caption keeps its organ. Other organ-less sentences stay captions of
their own; the RadLex filter decides about them, as it does for LLM captions.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from caption_curation.anatomy_tagger import AnatomyTagger, default_tagger
from caption_curation.captions import Caption
from caption_curation.sentence_splitter import split_sentences
from caption_curation.term_matcher import encode_words

# reports are templated (half of the sentences of the 800 shared CT-RATE reports are repeats):
# trim and tag each distinct sentence once
_MEMO_SENTENCES = 1 << 16

NEGATION_WORDS = frozenset({"no", "not", "without", "absent", "negative", "neither", "nor", "none"})
_LEAD_IN = re.compile(r"^([^;:]{1,100})[;:]\s*(.+)$")


def is_negated(text: str) -> bool:
    return not NEGATION_WORDS.isdisjoint(encode_words(text).split())


@dataclass
class _Draft:
    parts: list[str]
    sources: list[str]
    names_organ: bool
    attached: int = field(default=0)

    def to_caption(self) -> Caption:
        return Caption(text=". ".join(self.parts), source_sentence=" ".join(self.sources))


class OfflineDecomposer:
    def __init__(self, tagger: AnatomyTagger | None = None, max_attached: int = 2):
        self.tagger = tagger or default_tagger()
        self.max_attached = max_attached
        self._trim = lru_cache(maxsize=_MEMO_SENTENCES)(self._trim_sentence)
        self._continues_previous = lru_cache(maxsize=_MEMO_SENTENCES)(self.tagger.continues_previous)

    def _trim_sentence(self, sentence: str) -> tuple[str, bool]:
        """(caption text, names an organ) for one sentence."""
        lead_in = _LEAD_IN.match(sentence)
        if lead_in and not is_negated(lead_in.group(1)):
            rest_organs = self.tagger.organs(lead_in.group(2))
            if rest_organs and set(self.tagger.organs(lead_in.group(1))) <= set(rest_organs):
                rest = lead_in.group(2)
                return (rest[0].upper() + rest[1:]).rstrip(". "), True
        caption = sentence.rstrip(". ")
        return caption, bool(self.tagger.organs(caption))

    def decompose(self, report_text: str) -> list[Caption]:
        """Captions of one report's text (``Report.report_level_text``: the findings, else the impression)."""
        drafts: list[_Draft] = []
        for sentence in split_sentences(report_text):
            text, names_organ = self._trim(sentence)
            if not text:
                continue
            previous = drafts[-1] if drafts else None
            if (
                not names_organ
                and previous is not None
                and previous.names_organ
                and previous.attached < self.max_attached
                and self._continues_previous(text)
            ):
                previous.parts.append(text)
                previous.sources.append(sentence)
                previous.attached += 1
            else:
                drafts.append(_Draft(parts=[text], sources=[sentence], names_organ=names_organ))
        captions: dict[str, Caption] = {}
        for draft in drafts:
            caption = draft.to_caption()
            captions.setdefault(caption.text.lower(), caption)  # a report repeating itself gives one caption
        return list(captions.values())
