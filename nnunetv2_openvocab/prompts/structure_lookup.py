"""Which taxonomy structure a prompt names: the exact text index first (``Taxonomy.structure_named``), then the
same texts after prompt normalisation ('both kidneys', 'kidney on the left side'). The one lookup behind grounding,
the prompt report and DICOM-SEG codes, so a prompt's mask and its code always name the same structure."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Optional

from nnunetv2_openvocab.prompts.normalisation import normalise_prompt, normalised_index
from nnunetv2_openvocab.prompts.taxonomy import Taxonomy, load_taxonomy


@dataclass(frozen=True)
class StructureMatch:
    structure: str
    normalised: Optional[str] = None  # the normalised text that matched; None for an exact match


@lru_cache(maxsize=4)
def _normalised_structures(taxonomy: Taxonomy) -> Dict[tuple, str]:
    return normalised_index(taxonomy.named_texts())


def find_structure(prompt: str, taxonomy: Optional[Taxonomy] = None) -> Optional[StructureMatch]:
    taxonomy = taxonomy or load_taxonomy()
    exact = taxonomy.structure_named(prompt)
    if exact is not None:
        return StructureMatch(exact)
    normalised = normalise_prompt(prompt)
    structure = _normalised_structures(taxonomy).get(normalised.key)
    return StructureMatch(structure, normalised.text) if structure is not None else None
