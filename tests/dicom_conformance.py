"""Conformance of the DICOM objects the tests write (issue 22 §4), against the standard's module tables kept in
tests/data/dicom_iod_tables.json (made by tests/make_dicom_iod_tables.py from the tables highdicom ships).

dicom-validator, the offline validator the issue suggests, downloads the standard's DocBook files on first use
and cannot run without them (no network here, no specs in its package), so this is the explicit check instead:
for every module of the object's IOD that is mandatory (usage M), or conditional/user-optional (C, U) and in use
(one of its top-level attributes is present), in every item of the sequences an attribute is nested in:

* type 1: present and not empty;
* type 2: present (it may be empty);
* type 1C: not empty where present (whether its condition holds is prose in the standard, not in the table).

A multi-frame IOD's functional group macros sit in the Shared or in each Per-Frame Functional Groups item, and
most are conditional: the table cannot say which, so a macro's own sequence is not required by it, only its
contents are checked where present; the macros PS3.3 makes mandatory (Table A.51-2 for the Segmentation IOD)
must be in the shared item or in every per-frame item.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Dict, List

import pydicom
from pydicom.dataset import Dataset

TABLES = Path(__file__).parent / "data" / "dicom_iod_tables.json"
FUNCTIONAL_GROUPS = ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence")
MANDATORY_MACROS = {"1.2.840.10008.5.1.4.1.1.66.4": ("FrameContentSequence", "SegmentIdentificationSequence")}


@lru_cache(maxsize=1)
def _iods() -> Dict[str, dict]:
    return {iod["sop_class_uid"]: iod for iod in json.loads(TABLES.read_text())["iods"].values()}


def _items(ds: Dataset, path: List[str]) -> List[Dataset]:
    """Every data set that the sequence ``path`` (outermost first) leads to from ``ds``."""
    items = [ds]
    for keyword in path:
        items = [item for parent in items if keyword in parent for item in parent[keyword].value or []]
    return items


def _empty(ds: Dataset, keyword: str) -> bool:
    value = ds[keyword].value
    return value is None or value == "" or (hasattr(value, "__len__") and len(value) == 0)


def _in_use(ds: Dataset, module: dict) -> bool:
    return module["usage"] == "M" or any(">" not in attribute and attribute in ds
                                         for kind in ("1", "1C", "2") for attribute in module[kind])


def conformance_problems(ds: Dataset) -> List[str]:
    """Each mandatory attribute that ``ds`` lacks or leaves empty, as 'module: Sequence>Keyword (type T) ...'."""
    iod = _iods()[ds.SOPClassUID]
    problems = []
    for name, module in iod["modules"].items():
        if not _in_use(ds, module):
            continue
        for kind in ("1", "1C", "2"):
            for attribute in module[kind]:
                *path, keyword = attribute.split(">")
                for item in _items(ds, path):
                    if keyword not in item:
                        if kind != "1C" and path not in ([group] for group in FUNCTIONAL_GROUPS):
                            problems.append(f"{name}: {attribute} (type {kind}) is missing")
                    elif kind != "2" and _empty(item, keyword):
                        problems.append(f"{name}: {attribute} (type {kind}) is empty")
    for macro in MANDATORY_MACROS.get(ds.SOPClassUID, ()):
        if not (_items(ds, [FUNCTIONAL_GROUPS[0], macro]) or
                all(macro in frame for frame in _items(ds, [FUNCTIONAL_GROUPS[1]]))):
            problems.append(f"functional groups: {macro} is neither shared nor in every frame")
    return sorted(set(problems))


def assert_conforms(path: Path) -> None:
    """Fail the calling test if the DICOM file at ``path`` lacks a mandatory attribute of its IOD."""
    ds = pydicom.dcmread(path)
    problems = conformance_problems(ds)
    assert not problems, f"{path} does not conform to its IOD:\n" + "\n".join(problems)
