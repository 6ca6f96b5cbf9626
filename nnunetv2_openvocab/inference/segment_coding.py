"""Coded concepts for a prompt's DICOM segment: what viewers and PACS read besides the free-text label.

A prompt that names a structure of the shared taxonomy (its name, default prompt, a synonym, a held-out synonym
or its RadLex term; case and spacing ignored, then compared after prompt normalisation: 'both kidneys', 'kidney on
the left side') gets the category "Morphologically Altered Structure" for lesions, "Anatomical Structure"
otherwise, and the structure's RadLex code as segmented property type (taxonomy lesions have none: SNOMED CT
"Lesion"). Any other prompt gets the generic SNOMED CT "Anatomical Structure" for both;
its label (the prompt) says what it is.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Dict, Tuple

from highdicom.sr import CodedConcept

from nnunetv2_openvocab.prompts.normalisation import normalise_prompt, normalised_index
from nnunetv2_openvocab.prompts.prompt_text import prompt_identity
from nnunetv2_openvocab.prompts.taxonomy import Structure, load_taxonomy

RADLEX = "RADLEX"
ANATOMICAL_STRUCTURE_CATEGORY = CodedConcept("123037004", "SCT", "Anatomical Structure")
LESION_CATEGORY = CodedConcept("49755003", "SCT", "Morphologically Altered Structure")
GENERIC_TYPE = CodedConcept("91723000", "SCT", "Anatomical Structure")
LESION_TYPE = CodedConcept("52988006", "SCT", "Lesion")


@lru_cache(maxsize=1)
def _structures_by_text() -> Dict[str, Structure]:
    """Every name a taxonomy structure goes by -> the structure; the first structure claiming a text keeps it."""
    index: Dict[str, Structure] = {}
    structures = load_taxonomy().structures.values()
    for texts in (lambda s: [s.name, s.default_prompt], lambda s: [*s.synonyms, s.radlex_term or ""],
                  lambda s: s.eval_synonyms):
        for structure in structures:
            for text in texts(structure):
                if text:
                    index.setdefault(prompt_identity(text), structure)
    return index


@lru_cache(maxsize=1)
def _structures_by_normalised_text() -> Dict[tuple, Structure]:
    """The same texts after prompt normalisation ('both kidneys', 'kidney on the left side')."""
    structures = {structure.name: structure for structure in _structures_by_text().values()}
    by_name = normalised_index((text, structure.name) for text, structure in _structures_by_text().items())
    return {key: structures[name] for key, name in by_name.items()}


def segment_codes(prompt: str) -> Tuple[CodedConcept, CodedConcept]:
    """(segmented property category, segmented property type) for one prompt."""
    structure = (_structures_by_text().get(prompt_identity(prompt))
                 or _structures_by_normalised_text().get(normalise_prompt(prompt).key))
    if structure is None:
        return ANATOMICAL_STRUCTURE_CATEGORY, GENERIC_TYPE
    if structure.radlex_id:
        property_type = CodedConcept(structure.radlex_id, RADLEX, structure.radlex_term or structure.default_prompt)
    else:
        property_type = LESION_TYPE if structure.is_lesion else GENERIC_TYPE
    return (LESION_CATEGORY if structure.is_lesion else ANATOMICAL_STRUCTURE_CATEGORY), property_type
