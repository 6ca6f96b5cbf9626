"""Grounding's definition route (issue 21): a prompt that describes a structure instead of naming it ('the main
trunk of the systemic arteries', 'body organ that filters blood') reaches the structure through the text encoder,
compared with the RadLex definitions of the taxonomy's structures (prompts/radlex_lookup.py).

A prompt reads like a definition when it keeps at least DEFINITION_MIN_WORDS words after normalisation (side
words, determiners and 'of' dropped): every RadLex definition of the taxonomy's structures does, while names are
short -- 1,088 of the taxonomy's 1,113 names and synonyms and 161 of the 163 RadLex synonyms keep at most 3 ('upper
lobe of the left lung' -> left + lobe, lung, upper). Names stay with the name routes, so a part ('left upper lobe')
is never answered by the definition of its whole, which mentions it ('lung ... which consists of the left upper
lobe and left lower lobe').

Names and definitions score on different scales (a description shares few words with a name, and long sentences
sit closer to one another than short names do), so the route has its own threshold, calibrated per text encoder
on the calibration half of the paraphrase set by benchmarks/calibrate_definitions.py and read from
data/definition_calibration.json: ``{"encoders": {text_encoder: {"threshold": float, ...}}}``. An encoder with no
calibration there has no definition route. The definitions' embeddings go through the grounder's ``embed``, which
the predictor backs with the on-disk prompt-embedding cache, so they are encoded once per machine.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, List, Optional, Sequence, Tuple

import torch

from nnunetv2_openvocab.prompts.normalisation import normalise_prompt
from nnunetv2_openvocab.prompts.prompt_text import prompt_identity
from nnunetv2_openvocab.prompts.radlex_lookup import radlex_lookup_entries

DEFINITION_CALIBRATION_PATH = Path(__file__).resolve().parents[1] / "data" / "definition_calibration.json"
DEFINITION = "definition"
DEFINITION_MIN_WORDS = 4


def reads_like_definition(prompt: str) -> bool:
    return len(normalise_prompt(prompt).words) >= DEFINITION_MIN_WORDS


def calibrated_definition_threshold(text_encoder: str, path: Path = DEFINITION_CALIBRATION_PATH) -> Optional[float]:
    """The definition route's threshold calibrated for ``text_encoder``; None (no route) when it has none."""
    if not path.is_file():
        return None
    calibration = json.loads(path.read_text(encoding="utf-8"))["encoders"].get(text_encoder)
    return float(calibration["threshold"]) if calibration else None


def definition_entries(held_out: Collection[str] = ()) -> List[Tuple[str, str]]:
    """(definition, structure) for every RadLex definition of a taxonomy structure, minus held-out texts."""
    return [(text, structure) for text, structure, kind in radlex_lookup_entries()
            if kind == DEFINITION and prompt_identity(text) not in held_out]


@dataclass(frozen=True)
class DefinitionMatch:
    structure: str
    definition: str
    cosine: float
    threshold: float

    @property
    def reason(self) -> str:
        return (f"definition route: nearest RadLex definition is that of {self.structure} ('{self.definition}'), "
                f"cosine {self.cosine:.2f} >= definition threshold {self.threshold:.2f}")


class DefinitionIndex:
    """The taxonomy's RadLex definitions in the text encoder's space."""

    def __init__(self, embed: Callable[[List[str]], torch.Tensor], held_out: Collection[str] = ()):
        self.embed = embed
        self.entries = definition_entries(held_out)

    def similarities(self, prompts: Sequence[str]) -> torch.Tensor:
        """(prompts, definitions) cosine similarities."""
        texts = [text for text, _ in self.entries]
        vectors = torch.nn.functional.normalize(self.embed([*prompts, *texts]).float(), dim=-1)
        return vectors[:len(prompts)] @ vectors[len(prompts):].T

    def best(self, similarities: torch.Tensor, candidates: Sequence[int], threshold: float
             ) -> Optional[DefinitionMatch]:
        """The best of the ``candidates`` (indices into ``entries``) if it reaches ``threshold``."""
        if not candidates:
            return None
        best = max(candidates, key=lambda j: float(similarities[j]))
        text, structure = self.entries[best]
        cosine = float(similarities[best])
        return DefinitionMatch(structure, text, cosine, threshold) if cosine >= threshold else None
