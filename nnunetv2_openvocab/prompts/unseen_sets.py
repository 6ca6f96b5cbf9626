"""Unseen-prompt sets shipped with the package, for ``nnUNetv2_openvocab_eval_unseen`` and the demo.

File format (data/unseen_prompts/<name>.json)::

    {"name": "totalsegmentator_merged", "description": "...", "prompts": [
      {"prompt": "left lung", "targets": ["lung_upper_lobe_left", "lung_lower_lobe_left"], "kind": "merged"},
      {"prompt": "hepatic system", "targets": ["liver"], "kind": "synonym"}]}

``targets`` are label names of the dataset.json ``labels``; the ground truth of a prompt is their union.
``kind`` is "merged" (the prompt names a group of several training labels, e.g. lung lobes -> left lung) or
"synonym" (a held-out synonym, taxonomy ``eval_synonyms``, of a structure). No prompt is a training prompt of its
targets. The sets are generated from the taxonomy by ``python -m dataset_conversion.unseen_sets`` (except
``example.json``, the demo dataset's labels, written by hand); ``load_unseen_set`` is their one loader.
"""
from __future__ import annotations

import json
from pathlib import Path

UNSEEN_DIR = Path(__file__).resolve().parents[1] / "data" / "unseen_prompts"
MERGED = "merged"
SYNONYM = "synonym"


def load_unseen_set(name: str, folder: Path = UNSEEN_DIR) -> dict:
    path = Path(folder) / f"{name}.json"
    if not path.is_file():
        available = sorted(p.stem for p in Path(folder).glob("*.json"))
        raise FileNotFoundError(f"No unseen-prompt set {path}; available: {available}.")
    return json.loads(path.read_text(encoding="utf-8"))
