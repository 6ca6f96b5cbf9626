"""Generates the unseen-prompt sets shipped in nnunetv2_openvocab/data/unseen_prompts (format and loader:
``nnunetv2_openvocab.prompts.unseen_sets``) from the taxonomy.

Sets come from two sources: the hand-picked specs of data/unseen_prompt_specs.json (the paper's Tables VI and VII)
and :func:`taxonomy_unseen_set`, which lists every group and held-out synonym the taxonomy can resolve. Prompts that
cannot be resolved on the given labels (no label below the structure) or that are training prompts are left out
and named in the description. Regenerate the shipped files with ``python -m dataset_conversion.unseen_sets``.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from nnunetv2_openvocab.atomic_files import write_json_atomic
from dataset_conversion.label_tables import load_label_table
from dataset_conversion import DATA_DIR
from nnunetv2_openvocab.prompts.dataset_prompts import TrainingPrompts
from nnunetv2_openvocab.prompts.taxonomy import Taxonomy, load_taxonomy
from nnunetv2_openvocab.prompts.unseen_sets import MERGED, SYNONYM, UNSEEN_DIR

logger = logging.getLogger(__name__)

SPECS_PATH = DATA_DIR / "unseen_prompt_specs.json"


def training_prompts(label_names: Iterable[str], taxonomy: Taxonomy) -> TrainingPrompts:
    """The training prompts the converters give these labels (taxonomy prompts)."""
    return TrainingPrompts.from_mapping({name: taxonomy.prompts_for(name) for name in label_names if name in taxonomy})


def resolve_prompt(prompt: str, structures: Sequence[str], label_names: Sequence[str], taxonomy: Taxonomy,
                   seen: TrainingPrompts) -> Tuple[List[str], Optional[str]]:
    """(targets, reason it is left out or None): the union of the structures' labels, if unseen and resolvable."""
    targets: Dict[str, None] = {}
    for structure in structures:
        found = taxonomy.resolve_to_labels(structure, label_names)
        if not found:
            return [], f"'{prompt}' (no label under {structure})"
        targets.update(dict.fromkeys(found))
    if seen.is_seen(prompt):
        return [], f"'{prompt}' (training prompt of {seen.seen_label(prompt)})"
    return list(targets), None


def _unseen_set(name: str, description: str, entries: Iterable[Tuple[str, Sequence[str], str]],
                label_names: Sequence[str], taxonomy: Taxonomy) -> dict:
    seen = training_prompts(label_names, taxonomy)
    prompts, left_out = [], []
    for prompt, structures, kind in entries:
        targets, reason = resolve_prompt(prompt, structures, label_names, taxonomy, seen)
        if reason:
            left_out.append(reason)
        else:
            prompts.append({"prompt": prompt, "targets": targets, "kind": kind})
    if left_out:
        description += " Not applicable to these labels: " + "; ".join(left_out) + "."
    return {"name": name, "description": description, "prompts": prompts}


def spec_unseen_set(name: str, label_names: Sequence[str], taxonomy: Optional[Taxonomy] = None,
                    specs_path: Path = SPECS_PATH) -> dict:
    """The hand-picked set ``name`` of unseen_prompt_specs.json resolved on ``label_names``."""
    taxonomy = taxonomy or load_taxonomy()
    spec = json.loads(specs_path.read_text(encoding="utf-8"))[name]
    entries = [(p["prompt"], p["structures"], spec["kind"]) for p in spec["prompts"]]
    return _unseen_set(name, spec["description"], entries, label_names, taxonomy)


def taxonomy_unseen_set(name: str, label_names: Sequence[str], taxonomy: Optional[Taxonomy] = None) -> dict:
    """Every taxonomy group over two or more labels (default prompt, kind merged) and every held-out synonym."""
    taxonomy = taxonomy or load_taxonomy()
    labels = set(label_names)
    entries = []
    for structure in taxonomy.structures.values():
        if structure.name not in labels and len(taxonomy.resolve_to_labels(structure.name, labels)) >= 2:
            entries.append((structure.default_prompt, [structure.name], MERGED))
        entries += [(synonym, [structure.name], SYNONYM) for synonym in structure.eval_synonyms
                    if taxonomy.resolve_to_labels(structure.name, labels)]
    description = ("All taxonomy groups that merge two or more of these labels (default prompt) and all held-out "
                   "taxonomy synonyms (eval_synonyms) that resolve on them.")
    unseen = _unseen_set(name, description, entries, label_names, taxonomy)
    unseen["description"] = description  # groups without labels are not worth listing here
    return unseen


def shipped_sets(taxonomy: Optional[Taxonomy] = None) -> List[dict]:
    """The sets shipped in data/unseen_prompts/: the paper tables plus the full taxonomy set, on TotalSegmentator v2."""
    taxonomy = taxonomy or load_taxonomy()
    specs = json.loads(SPECS_PATH.read_text(encoding="utf-8"))
    sets = [spec_unseen_set(name, list(load_label_table(spec["label_table"]).labels), taxonomy)
            for name, spec in specs.items() if not name.startswith("_")]
    totalseg_labels = list(load_label_table("totalsegmentator_v2").labels)
    sets.append(taxonomy_unseen_set("totalsegmentator_taxonomy", totalseg_labels, taxonomy))
    return sets


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Regenerate the unseen-prompt sets in "
                                                 "nnunetv2_openvocab/data/unseen_prompts/ from the taxonomy.",
                                     epilog="Example: python -m dataset_conversion.unseen_sets -o /tmp/unseen")
    parser.add_argument("-o", "--output", type=Path, default=UNSEEN_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for unseen in shipped_sets():
        write_json_atomic(args.output / f"{unseen['name']}.json", unseen)
        logger.info("%s: %d prompts", unseen["name"], len(unseen["prompts"]))


if __name__ == "__main__":
    main()
