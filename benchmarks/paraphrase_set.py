"""A paraphrase set for grounding: everyday ways of writing the TotalSegmentator v2 structures, with their target
labels, split into calibration and test halves by structure family.

Sources (nothing is chosen by looking at grounding's results):
  * ``radlex``: the RadLex synonyms of each structure (../shared/data/radlex or $OPENVOCAB_SHARED_DATA/radlex,
    matched by RadLex id);
  * ``definition``: its RadLex definition (MeSH/FMA sentence, the source tag dropped);
  * ``described``: the definition paraphrased by two documented templates, so that it is no look-up of the
    stored text: its first sentence, cut at its first semicolon or colon, without its leading article and
    with 'which' read as 'that', written as 'the part of the body that is ...' ('the part of the body that is
    main trunk of the systemic arteries'); and that sentence's content words, as typed into a search box
    ('main trunk systemic arteries'; stop words: STOP_WORDS, general English function words);
  * ``side``: for a sided structure, its side-free default prompt B in five documented side phrasings:
    'B on the {side} side', '{side}-sided B', 'B situated on the {side}', '{sinistral|dextral} B', 'B, {L|R}';
  * ``quantifier``: for an unsided structure whose parts are a left/right pair of labels ('kidney'):
    'both Bs', 'the two Bs', 'bilateral Bs', 'left and right B'; for other structures 'the B'.
Targets are the TotalSegmentator v2 labels the structure resolves to (``Taxonomy.resolve_to_labels``).

Split: a structure's family is its name without side words ('kidney', 'kidney_left' and 'kidney_right' are one
family); the family's SHA-256 decides its half, so no family's paraphrases are in both halves.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Dict, List

from dataset_conversion.label_tables import load_label_table
from nnunetv2_openvocab.prompts.laterality import side_free_key, without_side
from nnunetv2_openvocab.prompts.prompt_text import prompt_identity
from nnunetv2_openvocab.prompts.taxonomy import Structure, Taxonomy, load_taxonomy

SHARED_DATA = Path(os.environ.get("OPENVOCAB_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
RADLEX_FILE = SHARED_DATA / "radlex" / "oidm_anatomic_locations_noembed.json"
CALIBRATION, TEST = "calibration", "test"
LATIN_SIDE = {"left": "sinistral", "right": "dextral"}
STOP_WORDS = frozenset("a an the of with which that is are has have as its it and or to in on by for from be".split())
SOURCE_TAG = r"\s*[\[{][A-Za-z]+\]\s*$"


def family(structure: str) -> str:
    return "_".join(side_free_key(structure))


def half(structure: str) -> str:
    return TEST if hashlib.sha256(family(structure).encode()).digest()[0] % 2 else CALIBRATION


def side_phrasings(base: str, side: str) -> List[str]:
    return [f"{base} on the {side} side", f"{side}-sided {base}", f"{base} situated on the {side}",
            f"{LATIN_SIDE[side]} {base}", f"{base}, {side[0].upper()}"]


def plural(noun_phrase: str) -> str:
    return noun_phrase + ("es" if noun_phrase.endswith(("s", "x")) else "s")


def quantifier_phrasings(structure: Structure, paired: bool) -> List[str]:
    base = structure.default_prompt
    if paired:
        return [f"both {plural(base)}", f"the two {plural(base)}", f"bilateral {plural(base)}",
                f"left and right {base}"]
    return [f"the {base}"]


def described_phrasings(definition: str) -> List[str]:
    sentence = re.split(r"\.\s|\.$|[;:]", re.sub(SOURCE_TAG, "", definition).strip())[0].strip().lower()
    sentence = re.sub(r"^(a|an|the)\s+", "", re.sub(r"\bwhich\b", "that", sentence))
    keywords = [word for word in re.findall(r"[a-z0-9]+", sentence) if word not in STOP_WORDS]
    return [f"the part of the body that is {sentence}", " ".join(keywords)]


def is_left_right_pair(taxonomy: Taxonomy, name: str) -> bool:
    parts = taxonomy.parts_of(name)
    return len(parts) == 2 and {taxonomy.structure(p).laterality for p in parts} == {"left", "right"}


def build_paraphrase_set(radlex_file: Path = RADLEX_FILE) -> List[Dict]:
    """[{prompt, kind, structure, targets, half}], one entry per distinct prompt text."""
    taxonomy = load_taxonomy()
    labels = list(load_label_table("totalsegmentator_v2").labels)
    radlex = {entry["_id"]: entry for entry in json.loads(radlex_file.read_text(encoding="utf-8"))}
    candidates = dict.fromkeys([*labels, *(s for s in taxonomy.structures if is_left_right_pair(taxonomy, s))])
    entries, seen = [], set()
    for name in candidates:
        structure = taxonomy.structure(name)
        targets = sorted(taxonomy.resolve_to_labels(name, labels))
        if not targets:
            continue
        record = radlex.get(structure.radlex_id or "", {})
        prompts = [(text, "radlex") for text in record.get("synonyms", [])]
        if record.get("definition"):
            prompts.append((re.sub(SOURCE_TAG, "", record["definition"]), "definition"))
            prompts += [(text, "described") for text in described_phrasings(record["definition"])]
        if structure.laterality != "none":
            prompts += [(text, "side") for text in side_phrasings(without_side(structure.default_prompt),
                                                                  structure.laterality)]
        else:
            prompts += [(text, "quantifier") for text in quantifier_phrasings(structure,
                                                                              is_left_right_pair(taxonomy, name))]
        for text, kind in prompts:
            if prompt_identity(text) not in seen:
                seen.add(prompt_identity(text))
                entries.append({"prompt": text, "kind": kind, "structure": name, "targets": targets,
                                "half": half(name)})
    return entries
