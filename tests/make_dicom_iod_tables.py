"""Write tests/data/dicom_iod_tables.json: the module tables of the DICOM Segmentation and RT Structure Set IODs
(PS3.3 A.51 and A.19: each module's usage, and every attribute's type and the sequences it is nested in), as
highdicom ships them in ``highdicom/_standard`` (generated there from the DICOM Standard's PS3.3 with innolitics'
dicom-standard parser). Only the types the conformance check reads are kept (1, 1C, 2), so the file stays small.
Format: {iod: {sop_class_uid, modules: {module: {usage: M/C/U, "1" | "1C" | "2": ["Sequence>...>Keyword"]}}}}.

    python tests/make_dicom_iod_tables.py   # after a highdicom upgrade; commit the changed JSON
"""
from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

from highdicom._standard_utils import get_iod_module_map, get_module_attribute_map

IODS = {"segmentation": "1.2.840.10008.5.1.4.1.1.66.4", "rt-structure-set": "1.2.840.10008.5.1.4.1.1.481.3"}
CHECKED_TYPES = ("1", "1C", "2")
TABLES = Path(__file__).parent / "data" / "dicom_iod_tables.json"


def iod_tables() -> dict:
    modules, attributes = get_iod_module_map(), get_module_attribute_map()
    return {"source": f"DICOM Standard PS3.3 module tables as shipped by highdicom {version('highdicom')} "
                      f"(highdicom/_standard, generated from PS3.3 by innolitics' dicom-standard)",
            "iods": {iod: {"sop_class_uid": uid,
                           "modules": {module["key"]: {"usage": module["usage"], **{
                               kind: [">".join([*a["path"], a["keyword"]]) for a in attributes[module["key"]]
                                      if a["type"] == kind] for kind in CHECKED_TYPES}}
                                       for module in modules[iod]}}
                     for iod, uid in IODS.items()}}


if __name__ == "__main__":
    TABLES.write_text(json.dumps(iod_tables(), separators=(",", ":")) + "\n")
