"""Generate dataset_conversion/data/taxonomy.json (deterministic, re-runnable).

Inputs:
- RadLex anatomic locations (``oidm_anatomic_locations_noembed.json``): RadLex ids, synonyms, left/right variants;
- the TotalSegmentator v2 class map (117 names, which become canonical structure names);
- ``data/taxonomy_overrides.json``: hand-curated prompts, synonyms, held-out evaluation synonyms, categories,
  part-of groups and the structures of the other datasets.

Rules applied here (the overrides file documents its own keys):
- a structure named ``*_left``/``*_right`` (side token anywhere) has that laterality and, when both sides exist, an
  unsided parent (``rib_left_1`` + ``rib_right_1`` -> ``rib_1``) whose default prompt is the left prompt without "left";
- RadLex synonyms are kept only when ASCII, without brackets, not an abbreviation and not deny-listed; a sided
  structure also gets its unsided RadLex synonyms with the side word prepended, and every synonym of a sided structure
  must contain its side word (general text encoders barely separate left from right);
- held-out ``eval_synonyms`` are never training prompts, and no training prompt may belong to two structures.

Usage: ``python -m dataset_conversion.build_taxonomy`` (defaults read ../shared/data and write data/taxonomy.json).
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import logging
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from nnunetv2_openvocab.atomic_files import write_json_atomic
from nnunetv2_openvocab.prompts.laterality import side_of, sides, without_side
from nnunetv2_openvocab.prompts.prompt_text import prompt_identity
from nnunetv2_openvocab.prompts.taxonomy import DEFAULT_TAXONOMY_PATH
from dataset_conversion import DATA_DIR

logger = logging.getLogger(__name__)

ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
            "eleventh", "twelfth")
DEFAULT_SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OVERRIDES_PATH = DATA_DIR / "taxonomy_overrides.json"


class RadLexIndex:
    """Case-insensitive look-up of RadLex anatomic locations by description or synonym."""

    def __init__(self, entries: List[dict]):
        self.by_id = {e["_id"]: e for e in entries}
        self._by_description: Dict[str, dict] = {}
        self._by_synonym: Dict[str, dict] = {}
        for entry in entries:
            self._by_description.setdefault(entry["description"].lower(), entry)
            for synonym in entry.get("synonyms") or []:
                self._by_synonym.setdefault(synonym.lower(), entry)

    def find(self, term: str) -> Optional[dict]:
        key = term.lower()
        return self._by_description.get(key) or self._by_synonym.get(key)

    def unsided(self, entry: dict) -> Optional[dict]:
        ref = entry.get("unsidedRef")
        return self.by_id.get(ref["id"]) if ref else None


def rule_based_prompt(name: str) -> str:
    """'kidney_left' -> 'left kidney', 'rib_right_3' -> 'right third rib', 'vertebrae_C1' -> 'C1 vertebra'."""
    side = side_of(name)
    tokens = without_side(name).split("_")
    if tokens[0] == "rib" and len(tokens) == 2:
        text = f"{ORDINALS[int(tokens[1]) - 1]} rib"
    elif tokens[0] == "vertebrae" and len(tokens) == 2:
        text = f"{tokens[1]} vertebra"
    else:
        text = " ".join(tokens)
    return f"{side} {text}" if side else text


def is_usable_radlex_synonym(term: str, denylist: set) -> bool:
    if not term.isascii() or any(c in term for c in "[]()"):
        return False
    if len(term) <= 3 or (term.isupper() and " " not in term):  # abbreviations: LUL, ivc, PV
        return False
    return term.lower() not in denylist


def dedupe(terms: Iterable[str], drop: Iterable[str] = ()) -> List[str]:
    seen = {t.lower() for t in drop}
    out = []
    for term in terms:
        if term.lower() not in seen:
            seen.add(term.lower())
            out.append(term)
    return out


class TaxonomyBuilder:
    def __init__(self, radlex: RadLexIndex, class_map: Dict[str, str], overrides: dict):
        self.radlex = radlex
        self.overrides = overrides.get("structures", {})
        self.denylist = {t.lower() for t in overrides.get("synonym_denylist", [])}
        self.categories = overrides.get("categories", {})
        self.groups = overrides.get("part_of_groups", {})
        self.collections = set(overrides.get("collections", []))
        self.totalsegmentator_names = [class_map[k] for k in sorted(class_map, key=int)]

    def structure_names(self) -> List[str]:
        explicit = list(self.totalsegmentator_names)
        explicit += [n for n in self.overrides if n not in explicit]
        explicit += [n for n in self.groups if n not in explicit]
        explicit += sorted({m for members in self.groups.values() for m in members
                            if not any(c in m for c in "*?[") and m not in explicit})
        names = set(explicit)
        parents = sorted({without_side(n) for n in names if side_of(n) == "left"
                          and n.replace("left", "right") in names} - names)
        return explicit + parents

    def build(self) -> List[dict]:
        names = self.structure_names()
        part_of = self._part_of_relations(names)
        structures = [self._structure(name, names, part_of.get(name, [])) for name in names]
        self._check(structures)
        return structures

    def _part_of_relations(self, names: List[str]) -> Dict[str, List[str]]:
        relations: Dict[str, List[str]] = {}
        for name in names:  # sided pairs -> their unsided parent
            if side_of(name) and without_side(name) in names:
                relations.setdefault(name, []).append(without_side(name))
        for parent, patterns in self.groups.items():
            for pattern in patterns:
                members = fnmatch.filter(names, pattern)
                if not members:
                    raise ValueError(f"part_of_groups[{parent!r}] pattern {pattern!r} matches no structure; "
                                     f"fix the pattern in {OVERRIDES_PATH}.")
                for member in members:
                    if parent not in relations.setdefault(member, []):
                        relations[member].append(parent)
        return relations

    def _default_prompt(self, name: str, names: List[str]) -> str:
        override = self.overrides.get(name, {})
        if "default_prompt" in override:
            return override["default_prompt"]
        left_child = next((n for n in names if side_of(n) == "left" and without_side(n) == name), None)
        if left_child is not None:
            return without_side(self._default_prompt(left_child, names))
        if name in self.totalsegmentator_names:
            return rule_based_prompt(name)
        raise ValueError(f"Structure {name!r} needs a 'default_prompt' in {OVERRIDES_PATH} (it is neither a "
                         f"TotalSegmentator class nor the unsided parent of a left/right pair).")

    def _category(self, name: str) -> str:
        if "category" in self.overrides.get(name, {}):
            return self.overrides[name]["category"]
        for category, patterns in self.categories.items():
            if any(fnmatch.fnmatchcase(name, p) for p in patterns):
                return category
        return "organ"

    def _radlex_entry(self, name: str, prompt: str) -> Optional[dict]:
        term = self.overrides.get(name, {}).get("radlex_term")
        if term is None:
            return self.radlex.find(prompt)
        entry = self.radlex.find(term)
        if entry is None:
            raise ValueError(f"radlex_term {term!r} of {name!r} is not a RadLex description or synonym; "
                             f"correct it in {OVERRIDES_PATH}.")
        return entry

    def _radlex_synonyms(self, entry: Optional[dict], side: Optional[str], unsided_entry: Optional[dict]) -> List[str]:
        def usable_terms(e: dict) -> List[str]:
            return [t for t in [e["description"], *(e.get("synonyms") or [])]
                    if is_usable_radlex_synonym(t, self.denylist)]

        synonyms = usable_terms(entry) if entry is not None else []
        if side and unsided_entry is not None and unsided_entry is not entry:
            synonyms += [f"{side} {t}" for t in usable_terms(unsided_entry) if not sides(t)]
        if side:
            synonyms = [t for t in synonyms if side in sides(t)]
        return synonyms

    def _structure(self, name: str, names: List[str], parents: List[str]) -> dict:
        override = self.overrides.get(name, {})
        prompt = self._default_prompt(name, names)
        side = side_of(name)
        entry = self._radlex_entry(name, prompt)
        unsided_entry = None
        if side:
            unsided_entry = (self.radlex.unsided(entry) if entry else None) or self.radlex.find(without_side(prompt))
        eval_synonyms = override.get("eval_synonyms", [])
        excluded = [*eval_synonyms, *override.get("exclude_synonyms", []), prompt]
        synonyms = dedupe([*override.get("synonyms", []), *self._radlex_synonyms(entry, side, unsided_entry)], excluded)
        return {
            "name": name,
            "default_prompt": prompt,
            "synonyms": synonyms,
            "eval_synonyms": list(eval_synonyms),
            "laterality": side or "none",
            "part_of": parents,
            "collection": name in self.collections,
            "category": self._category(name),
            "organ": override.get("organ"),
            "radlex_id": entry["_id"] if entry else None,
            "radlex_term": entry["description"] if entry else None,
            "region": entry["region"] if entry else None,
        }

    def _check(self, structures: List[dict]) -> None:
        by_name = {s["name"]: s for s in structures}
        owner: Dict[str, str] = {}
        for s in structures:
            for prompt in [s["default_prompt"], *s["synonyms"]]:
                other = owner.setdefault(prompt_identity(prompt), s["name"])
                if other != s["name"]:
                    raise ValueError(f"Training prompt {prompt!r} belongs to both {other!r} and {s['name']!r}; "
                                     f"remove it from one of them in {OVERRIDES_PATH} (exclude_synonyms).")
            if s["laterality"] != "none":
                unsided = [p for p in [s["default_prompt"], *s["synonyms"]] if s["laterality"] not in sides(p)]
                if unsided:
                    raise ValueError(f"Prompts {unsided} of {s['name']!r} lack the side word "
                                     f"{s['laterality']!r}; add it in {OVERRIDES_PATH}.")
            if s["category"] == "lesion" and s["organ"] not in by_name:
                raise ValueError(f"Lesion {s['name']!r} needs an 'organ' naming a taxonomy structure "
                                 f"(found {s['organ']!r}); set it in {OVERRIDES_PATH}.")
        for s in structures:
            for prompt in s["eval_synonyms"]:
                if prompt_identity(prompt) in owner:
                    raise ValueError(f"Held-out synonym {prompt!r} of {s['name']!r} is also a training prompt of "
                                     f"{owner[prompt_identity(prompt)]!r}; exclude it there in {OVERRIDES_PATH}.")


def build_taxonomy(radlex_path: Path, class_map_path: Path, overrides_path: Path = OVERRIDES_PATH) -> dict:
    radlex = RadLexIndex(json.loads(Path(radlex_path).read_text(encoding="utf-8")))
    class_map = json.loads(Path(class_map_path).read_text(encoding="utf-8"))
    overrides = json.loads(Path(overrides_path).read_text(encoding="utf-8"))
    structures = TaxonomyBuilder(radlex, class_map, overrides).build()
    return {
        "about": ("Canonical CT structures shared by the converters, the trainer (default prompt + synonyms are "
                  "training prompts) and the unseen-prompt benchmark (eval_synonyms are held out). Generated by "
                  "dataset_conversion/build_taxonomy.py from RadLex, the TotalSegmentator v2 class map and "
                  "data/taxonomy_overrides.json; edit the overrides, not this file."),
        "licence_notice": ("RadLex ids, terms and synonyms: Copyright Radiological Society of North America (RSNA), "
                           "RadLex License 2.0; see RADLEX_NOTICE.md next to this file."),
        "structures": structures,
    }


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description="Regenerate dataset_conversion/data/taxonomy.json from RadLex, the TotalSegmentator class map "
                    "and data/taxonomy_overrides.json.",
        epilog="Example: python -m dataset_conversion.build_taxonomy "
               "--radlex ../shared/data/radlex/oidm_anatomic_locations_noembed.json "
               "--class-map ../shared/data/totalsegmentator/class_map_total.json")
    parser.add_argument("--radlex", type=Path,
                        default=DEFAULT_SHARED_DATA / "radlex" / "oidm_anatomic_locations_noembed.json")
    parser.add_argument("--class-map", type=Path,
                        default=DEFAULT_SHARED_DATA / "totalsegmentator" / "class_map_total.json")
    parser.add_argument("--overrides", type=Path, default=OVERRIDES_PATH)
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_TAXONOMY_PATH)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    taxonomy = build_taxonomy(args.radlex, args.class_map, args.overrides)
    write_json_atomic(args.output, taxonomy)
    n_radlex = sum(s["radlex_id"] is not None for s in taxonomy["structures"])
    logger.info("Wrote %d structures (%d with a RadLex id) to %s", len(taxonomy["structures"]), n_radlex, args.output)


if __name__ == "__main__":
    main()
