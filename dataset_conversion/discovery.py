"""Find the cases of a native dataset from the file patterns in its label table.

A pattern is a path relative to the native folder with ``{id}`` standing for the case id, e.g.
``"Training/img/img{id}.nii.gz"``; ``{id}`` may appear more than once (SegTHOR: ``"Patient_{id}/Patient_{id}.nii.gz"``).
A case is every id found by the image or the label pattern, so an image without its label (or the reverse) still
becomes a case and is reported as a missing file instead of silently dropped.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from dataset_conversion.case_conversion import Case
from dataset_conversion.label_tables import LabelTable

ID = "{id}"


def case_identifier(prefix: str, native_id: str) -> str:
    """nnU-Net-safe identifier: ``prefix_nativeid`` with anything but letters, digits and '-' turned into '_'."""
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9-]+', '_', native_id).strip('_')}"


def _pattern_regex(pattern: str) -> re.Pattern:
    parts = re.escape(pattern).split(re.escape(ID))
    regex = parts[0]
    for i, part in enumerate(parts[1:]):
        regex += ("(?P<id>[^/]+?)" if i == 0 else "(?P=id)") + part
    return re.compile(regex + "$")


def find_ids(root: Path, pattern: str) -> List[str]:
    """Case ids of the files under ``root`` that match ``pattern`` (hidden files such as '._x.nii.gz' are skipped)."""
    if ID not in pattern:
        raise ValueError(f"File pattern {pattern!r} has no '{ID}'; fix the label table 'layout'.")
    regex = _pattern_regex(pattern)
    ids = set()
    for path in root.glob(pattern.replace(ID, "*")):
        relative = path.relative_to(root)
        match = regex.match(relative.as_posix())
        if match and not any(part.startswith(".") for part in relative.parts):
            ids.add(match.group("id"))
    return sorted(ids)


def paired_files(root: Path, image_pattern: str,
                 label_pattern: Optional[str]) -> List[Tuple[str, Path, Optional[Path]]]:
    """(id, image path, label path) for every id found by either pattern; paths may not exist."""
    ids = set(find_ids(root, image_pattern))
    if label_pattern:
        ids |= set(find_ids(root, label_pattern))
    return [(i, root / image_pattern.replace(ID, i), root / label_pattern.replace(ID, i) if label_pattern else None)
            for i in sorted(ids)]


def cases_from_layout(root: Path, table: LabelTable, keep_id: Callable[[str], bool] = lambda _: True,
                      split_override: Optional[Dict[str, str]] = None) -> List[Case]:
    """Cases described by ``table.layout['cases']``: a list of ``{"split", "image", "label"}`` patterns.

    ``keep_id`` filters native ids (AMOS: CT ids only); ``split_override`` renames splits (AMOS: test -> train).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Native folder {root} does not exist; pass the extracted {table.dataset} folder.")
    cases = []
    for spec in table.layout["cases"]:
        split = (split_override or {}).get(spec["split"], spec["split"])
        for native_id, image, label in paired_files(root, spec["image"], spec.get("label")):
            if keep_id(native_id):
                cases.append(Case(case_identifier(table.case_prefix, native_id), split, image, label))
    if not cases:
        patterns = [spec["image"] for spec in table.layout["cases"]]
        raise FileNotFoundError(f"No {table.dataset} case found under {root} with the patterns {patterns}; check "
                                f"that -i points at the right folder, or correct 'layout' in {table.path}.")
    return cases
