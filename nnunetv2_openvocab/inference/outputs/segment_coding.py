"""Coded concepts for a prompt's DICOM segment: what viewers and PACS read besides the free-text label.

A prompt that names a structure of the shared taxonomy (``prompts.structure_lookup.find_structure``: its name,
default prompt, a synonym, its RadLex term or a held-out synonym, RadLex's own synonyms and definitions; case and
spacing ignored, then compared after prompt normalisation: 'both kidneys', 'kidney on the left side') gets the
category "Morphologically Altered Structure" for lesions, "Anatomical Structure" otherwise, and the structure's
RadLex code as segmented property type (taxonomy lesions have none: SNOMED CT "Lesion"). Any other prompt gets the
generic SNOMED CT "Anatomical Structure" for both; its label (the prompt) says what it is. Grounding uses the same
lookup, so a mask and its code always name one structure.
"""
from __future__ import annotations

from typing import Tuple

from highdicom.sr import CodedConcept

from nnunetv2_openvocab.prompts.structure_lookup import find_structure
from nnunetv2_openvocab.prompts.taxonomy import load_taxonomy

RADLEX = "RADLEX"
ANATOMICAL_STRUCTURE_CATEGORY = CodedConcept("123037004", "SCT", "Anatomical Structure")
LESION_CATEGORY = CodedConcept("49755003", "SCT", "Morphologically Altered Structure")
GENERIC_TYPE = CodedConcept("91723000", "SCT", "Anatomical Structure")
LESION_TYPE = CodedConcept("52988006", "SCT", "Lesion")


def segment_codes(prompt: str) -> Tuple[CodedConcept, CodedConcept]:
    """(segmented property category, segmented property type) for one prompt."""
    taxonomy = load_taxonomy()
    match = find_structure(prompt, taxonomy)
    if match is None:
        return ANATOMICAL_STRUCTURE_CATEGORY, GENERIC_TYPE
    structure = taxonomy.structure(match.structure)
    if structure.radlex_id:
        property_type = CodedConcept(structure.radlex_id, RADLEX, structure.radlex_term or structure.default_prompt)
    else:
        property_type = LESION_TYPE if structure.is_lesion else GENERIC_TYPE
    return (LESION_CATEGORY if structure.is_lesion else ANATOMICAL_STRUCTURE_CATEGORY), property_type
