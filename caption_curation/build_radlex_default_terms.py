"""Rebuild the shipped default term list (data/radlex_default_terms.txt) from a RadLex Term/RID/Parent_RID table.

The default keeps the named entities of three RadLex branches (anatomical entity, clinical finding,
imaging observation) and leaves out descriptors, properties, procedures, substances and obsolete
terms. Those branches hold words such as "no", "normal", "left" or "few"; with them every caption
would pass the filter and the filter would remove nothing. For the same reason the generic
"anatomic sub-part" branch (body, wall, middle, pole, ...) and two words that reports mostly use in
another sense ("patient"; "axis", as in "short axis") are left out.

    python -m caption_curation.build_radlex_default_terms ../shared/data/radlex/tekram_Radlex_2017.csv
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from nnunetv2_openvocab.atomic_files import atomic_write
from caption_curation.radlex_terms import DEFAULT_TERMS_PATH, clean_terms

KEPT_BRANCHES = {
    "RID3": "anatomical entity",
    "RID34785": "clinical finding",
    "RID5": "imaging observation",
}
DROPPED_BRANCHES = {"RID5945": "anatomic sub-part"}
DROPPED_TERMS = {"patient", "axis"}


def terms_in_branches(table: pd.DataFrame, branch_rids: set[str], dropped_rids: set[str] = frozenset()) -> list[str]:
    """Terms at or below one of ``branch_rids`` in the Parent_RID tree but not below ``dropped_rids``, in table order."""
    parent_of = dict(zip(table["RID"], table["Parent_RID"]))
    inside: dict[str, bool] = {rid: False for rid in dropped_rids}

    def is_inside(rid: str) -> bool:
        path = []
        # walk up until a RID with a known answer, a kept branch, the root, or a cycle
        while rid not in inside and rid not in branch_rids and rid in parent_of and rid not in path:
            path.append(rid)
            rid = parent_of[rid]
        answer = rid in branch_rids or inside.get(rid, False)
        for visited in path:
            inside[visited] = answer
        return answer

    return [term for term, rid in zip(table["Term"], table["RID"]) if is_inside(rid)]


def build_default_terms(radlex_table: Path, out_path: Path = DEFAULT_TERMS_PATH) -> int:
    table = pd.read_csv(radlex_table, dtype=str, keep_default_na=False)
    missing = {"Term", "RID", "Parent_RID"} - set(table.columns)
    if missing:
        raise ValueError(f"{radlex_table}: missing columns {sorted(missing)}; expected a Term,RID,Parent_RID table")
    in_branches = terms_in_branches(table, set(KEPT_BRANCHES), set(DROPPED_BRANCHES))
    terms = clean_terms(term for term in in_branches if term.lower() not in DROPPED_TERMS)
    header = [
        "# Default RadLex term list for caption_curation's filter; RadLex content, see RADLEX_NOTICE.txt.",
        f"# Built by caption_curation.build_radlex_default_terms from {radlex_table.name};",
        "# branches kept: " + ", ".join(f"{name} ({rid})" for rid, name in KEPT_BRANCHES.items())
        + "; left out: " + ", ".join(f"{name} ({rid})" for rid, name in DROPPED_BRANCHES.items())
        + " and the terms " + ", ".join(sorted(DROPPED_TERMS)) + ".",
    ]
    with atomic_write(out_path) as handle:
        handle.write("\n".join(header + terms) + "\n")
    return len(terms)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("radlex_table", type=Path, help="CSV with Term, RID and Parent_RID columns")
    parser.add_argument("--out", type=Path, default=DEFAULT_TERMS_PATH, help="term list to write")
    args = parser.parse_args(argv)
    count = build_default_terms(args.radlex_table, args.out)
    print(f"wrote {count} terms to {args.out}")


if __name__ == "__main__":
    main()
