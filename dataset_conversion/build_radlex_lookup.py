"""Generate nnunetv2_openvocab/data/radlex_lookup.json: the RadLex synonyms and definitions of the taxonomy's
structures, for grounding's lookup (never for training: build_taxonomy keeps Latin and German terms and
abbreviations out of the training prompts, but a user may still write 'ren', 'IVC' or paste a definition).

Format: ``{"source": ..., "structures": {name: {"synonyms": [...], "definition": "..."}}}``; a structure without
RadLex synonyms or definition is left out; definitions lose their source tag ('[MeSH]').

Usage: ``python -m dataset_conversion.build_radlex_lookup [--radlex FILE] [-o FILE]`` (defaults: ../shared/data and
the shipped file).
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from dataset_conversion.build_taxonomy import DEFAULT_SHARED_DATA
from nnunetv2_openvocab.atomic_files import write_json_atomic
from nnunetv2_openvocab.prompts.radlex_lookup import RADLEX_LOOKUP_PATH
from nnunetv2_openvocab.prompts.taxonomy import load_taxonomy

RADLEX_FILE = DEFAULT_SHARED_DATA / "radlex" / "oidm_anatomic_locations_noembed.json"


def radlex_lookup(radlex_file: Path) -> dict:
    records = {entry["_id"]: entry for entry in json.loads(radlex_file.read_text(encoding="utf-8"))}
    structures = {}
    for structure in load_taxonomy().structures.values():
        record = records.get(structure.radlex_id or "")
        if record is None:
            continue
        texts = {"synonyms": list(record.get("synonyms") or [])}
        if record.get("definition"):
            texts["definition"] = re.sub(r"\s*\[[A-Za-z]+\]\s*$", "", record["definition"])
        if texts["synonyms"] or "definition" in texts:
            structures[structure.name] = texts
    return {"source": f"{radlex_file.name} (RadLex, see RADLEX_NOTICE.md)", "structures": structures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--radlex", type=Path, default=RADLEX_FILE)
    parser.add_argument("-o", "--output", type=Path, default=RADLEX_LOOKUP_PATH)
    args = parser.parse_args()
    write_json_atomic(args.output, radlex_lookup(args.radlex))


if __name__ == "__main__":
    main()
