"""Prompt text rules in one place: used by dataset validation, the embedding cache, the prompt report,
prediction and evaluation.

* ``clean_prompt``: the prompt as used, without leading/trailing whitespace. It is what the model embeds,
  what the embedding cache is keyed by, and what reports print.
* ``words``: the one definition of a word, for every script: a run of letters and digits (underscores and
  punctuation separate words), lower-cased. Laterality, grounding and the taxonomy index read words through it.
* ``prompt_identity``: the words joined by single spaces; two prompts with one identity are the same prompt
  ("Left  Kidney", "kidney_left" and "kidney left," are one): a prompt on two labels, a "seen" prompt in the
  report, grounding's exact matches, DICOM-SEG codes.
* ``prompt_slug`` / ``prompt_file_name``: the file-name form, ``<case>_<slug><ending>``: the words joined by
  underscores, accents folded to ASCII ('Nière gauche' -> 'niere_gauche'); a word of another script (Arabic,
  CJK) becomes 'u' + the first 8 hex digits of its UTF-8 SHA-1, so the slug is ASCII, stable across runs and
  distinct for distinct words. Two prompts with one slug would overwrite each other's mask, so
  ``slug_collisions`` finds them.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Dict, Iterable, List, Tuple

SLUG_MAX_LENGTH = 64


class PromptTextError(ValueError):
    """A prompt that is empty, not text, or has nothing to name a file with."""


def clean_prompt(prompt: object) -> str:
    """The prompt without surrounding whitespace; refuses non-strings and empty prompts."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise PromptTextError(f"prompt {prompt!r} is empty or not text. Give text such as 'liver', or drop it.")
    return prompt.strip()


def words(text: str) -> List[str]:
    """Lower-case words of any script: 'Kidney_Left' -> ['kidney', 'left']."""
    return re.findall(r"[^\W_]+", text.lower())


def prompt_identity(prompt: str) -> str:
    return " ".join(words(prompt))


def _ascii_word(word: str) -> str:
    """A non-ASCII word's file-name form: its accents dropped when every letter has an ASCII base, else a hash."""
    folded = unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode("ascii")
    if len(folded) == len(word):  # NFKD splits 'è' into 'e' + a combining accent, which the ASCII encoding drops
        return folded
    return "u" + hashlib.sha1(word.encode("utf-8")).hexdigest()[:8]


def prompt_slug(prompt: str) -> str:
    """File-name-safe form of a prompt: 'Left kidney (cortex)' -> 'left_kidney_cortex'."""
    slug = "_".join(word if word.isascii() else _ascii_word(word) for word in words(prompt))
    if not slug:
        raise PromptTextError(f"Prompt {prompt!r} has no letters or digits; give a prompt such as 'liver'.")
    return slug[:SLUG_MAX_LENGTH].rstrip("_")


def prompt_file_name(case_identifier: str, prompt: str, file_ending: str = ".nii.gz") -> str:
    """Output mask name for one prompt of one case: ``<case>_<prompt-slug><file_ending>``."""
    return f"{case_identifier}_{prompt_slug(prompt)}{file_ending}"


def slug_collisions(prompts: Iterable[str]) -> List[Tuple[str, str, str]]:
    """(first prompt, later prompt, shared slug) for every later prompt whose file name is already taken by
    another prompt text (repeats of one text are not collisions); prompts without a slug are left to
    ``prompt_slug``'s own error."""
    owners: Dict[str, str] = {}
    collisions = []
    for prompt in prompts:
        try:
            slug = prompt_slug(prompt)
        except PromptTextError:
            continue
        owner = owners.setdefault(slug, prompt)
        if owner != prompt:
            collisions.append((owner, prompt, slug))
    return collisions
