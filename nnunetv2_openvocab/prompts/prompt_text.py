"""Prompt text rules in one place: used by dataset validation, the embedding cache, the prompt report,
prediction and evaluation.

* ``clean_prompt``: the prompt as used, without leading/trailing whitespace. It is what the model embeds,
  what the embedding cache is keyed by, and what reports print.
* ``prompt_identity``: the lower-cased words (letters and digits of any script; punctuation and underscores
  dropped); two prompts with one identity are the same prompt ("Left  Kidney", "kidney_left" and "kidney left,"
  are one): a prompt on two labels, a "seen" prompt in the report, grounding's exact matches, DICOM-SEG codes.
* ``prompt_slug`` / ``prompt_file_name``: the file-name form, ``<case>_<slug><ending>``; two prompts with
  one slug would overwrite each other's mask, so ``slug_collisions`` finds them.
"""
from __future__ import annotations

import re
from typing import Dict, Iterable, List, Tuple

SLUG_MAX_LENGTH = 64


class PromptTextError(ValueError):
    """A prompt that is empty, not text, or has nothing to name a file with."""


def clean_prompt(prompt: object) -> str:
    """The prompt without surrounding whitespace; refuses non-strings and empty prompts."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise PromptTextError(f"prompt {prompt!r} is empty or not text. Give text such as 'liver', or drop it.")
    return prompt.strip()


def prompt_identity(prompt: str) -> str:
    return " ".join(re.findall(r"[^\W_]+", prompt.lower()))


def prompt_slug(prompt: str) -> str:
    """File-name-safe form of a prompt: 'Left kidney (cortex)' -> 'left_kidney_cortex'."""
    slug = re.sub(r"[^a-z0-9]+", "_", prompt.strip().lower()).strip("_")
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
