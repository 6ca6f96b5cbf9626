"""Prompt normalisation before lookup: the everyday ways of writing a structure reduced to one side marker plus
the structure's words, so 'both kidneys', 'the kidney on the left side' and 'kidney, L' meet the taxonomy's
'kidney' and 'left kidney'. Used by grounding (exact lookup and the side a prompt names), the prompt report
(laterality) and DICOM-SEG coding.

Rules, in order (each follows a pattern of RadLex terms or of clinical writing):
  1. words: lower case, letters and digits (``prompt_identity``), hyphens split ('left-sided' = 'left sided').
  2. both sides: 'bilateral', 'both', 'paired', 'each', 'left and right' / 'right and left' name both sides
     (clinical usage: "bilateral kidneys", "both lungs"); the prompt then names no single side.
  3. one side: 'left'/'right', the Latin/RadLex forms 'sinistral'/'sinister'/'sinistra' and
     'dextral'/'dexter'/'dextra' ('arteria subclavia dextra'), and the
     report abbreviations 'l'/'r' as a word of their own ('L kidney'; 'l3' is a vertebra, one word) become the side
     marker. The words that only frame a side are dropped with it: 'sided' ('left-sided'), and 'side', 'half' and
     the locatives 'on', 'at', 'in', 'to', 'situated', 'located', 'lying', 'positioned' ("situated on the right
     side") when the prompt names a side.
  4. determiners and quantifiers carry no anatomy: 'the', 'a', 'an', 'all', 'two' ('the two kidneys'), 'of'
     (RadLex writes 'upper lobe of left lung' and 'left upper lobe of lung' for one structure).
  5. plural to singular: a word ending in '-ies', '-ae' or '-s' becomes 'y', 'a' or loses the 's' when that
     singular is a word of the taxonomy's own texts ('kidneys' -> 'kidney', 'vertebrae' -> 'vertebra',
     'arteries' -> 'artery'; 'pancreas' and 'iliopsoas' stay: 'pancrea' and 'iliopsoa' are no words of it).
  6. word order: the structure's words are compared as a sorted bag ('X of the Y' = 'Y X'; RadLex's inverted
     'kidney, left' = 'left kidney').
Abbreviations in RadLex or the taxonomy's synonyms ('IVC', 'L3 vertebra') need no rule: they are entries of the
index that normalised prompts are looked up in.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, FrozenSet, Iterable, Optional, Tuple

from nnunetv2_openvocab.prompts.taxonomy import load_taxonomy

SIDE_WORDS = {"left": "left", "sinistral": "left", "sinister": "left", "sinistra": "left", "l": "left",
              "right": "right", "dextral": "right", "dexter": "right", "dextra": "right", "r": "right"}
BOTH_SIDES_WORDS = frozenset({"bilateral", "both", "paired", "each"})
SIDE_FRAME_WORDS = frozenset({"sided", "side", "sides", "half", "on", "at", "in", "to", "situated", "located",
                              "lying", "positioned"})
DETERMINERS = frozenset({"the", "a", "an", "all", "two", "of"})


@dataclass(frozen=True)
class NormalisedPrompt:
    """``side``: the one side named ('left'/'right'), else None; ``both_sides``: named both sides or a
    bilateral quantifier; ``words``: the structure's words, singular, as a sorted bag."""

    side: Optional[str]
    both_sides: bool
    words: Tuple[str, ...]

    @property
    def key(self) -> Tuple[Optional[str], Tuple[str, ...]]:
        """What two prompts for one structure share: the side and the structure's words."""
        return self.side, self.words

    @property
    def text(self) -> str:
        """A readable form for text encoders: 'left kidney', 'kidney'."""
        return " ".join(([self.side] if self.side else []) + list(self.words))


def split_words(text: str) -> list:
    return re.findall(r"[^\W_]+", text.lower())


@lru_cache(maxsize=1)
def taxonomy_vocabulary() -> FrozenSet[str]:
    """Every word of the taxonomy's names, prompts and held-out synonyms (rule 5's dictionary)."""
    words = set()
    for structure in load_taxonomy().structures.values():
        for text in (structure.name, *structure.prompts, *structure.eval_synonyms, structure.radlex_term or ""):
            words.update(split_words(text))
    return frozenset(words)


def singular(word: str, vocabulary: FrozenSet[str]) -> str:
    for plural, single in (("ies", "y"), ("ae", "a"), ("s", "")):
        if word.endswith(plural) and word[:-len(plural)] + single in vocabulary:
            return word[:-len(plural)] + single
    return word


def _side_words(words: list) -> list:
    """Indices of the words that name a side (rule 3); 'l'/'r' only beside other words and not before a number
    ('L 3' is the third lumbar vertebra)."""
    out = []
    for i, word in enumerate(words):
        abbreviation = len(word) == 1
        if word in SIDE_WORDS and not (abbreviation and (len(words) == 1 or words[i + 1:i + 2] and
                                                         words[i + 1].isdigit())):
            out.append(i)
    return out


def normalise_prompt(text: str, vocabulary: Optional[Iterable[str]] = None) -> NormalisedPrompt:
    """Rules 1-6 on one prompt (``vocabulary``: rule 5's dictionary, the taxonomy's words by default)."""
    vocabulary = taxonomy_vocabulary() if vocabulary is None else frozenset(vocabulary)
    words = split_words(text)
    side_indices = _side_words(words)
    named = {SIDE_WORDS[words[i]] for i in side_indices}
    both = len(named) > 1 or any(w in BOTH_SIDES_WORDS for w in words)
    dropped = DETERMINERS | BOTH_SIDES_WORDS | (SIDE_FRAME_WORDS if named else frozenset())
    if both:
        dropped = dropped | {"and"}  # 'left and right kidney': the 'and' joins the sides, not two structures
    rest = [w for i, w in enumerate(words) if i not in side_indices and w not in dropped]
    structure_words = tuple(sorted(singular(w, vocabulary) for w in rest))
    return NormalisedPrompt(next(iter(named)) if len(named) == 1 and not both else None, both, structure_words)


def prompt_side(text: str) -> Optional[str]:
    """The one side a prompt names (any phrasing of rule 3), or None when it names none or both."""
    return normalise_prompt(text).side


def normalised_index(entries: Iterable[Tuple[str, str]]) -> Dict[Tuple[Optional[str], Tuple[str, ...]], str]:
    """(text, structure) pairs -> {normalised key: structure}; a key that two structures share is left out (the
    normalisation would make the lookup guess between them)."""
    index: Dict[Tuple[Optional[str], Tuple[str, ...]], str] = {}
    ambiguous = set()
    for text, structure in entries:
        key = normalise_prompt(text).key
        if key[1] and index.setdefault(key, structure) != structure:
            ambiguous.add(key)
    return {key: structure for key, structure in index.items() if key not in ambiguous}
