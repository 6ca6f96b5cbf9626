"""Label tables: one data file per source dataset, data/label_tables/<key>.json, easy to correct by hand.

Keys of a table file:
``dataset`` (display name), ``case_prefix`` (prefix of the converted case identifiers), ``source``, ``licence``,
``reference`` (provenance copied into dataset.json), ``uncertain`` (what in the layout or label order is not certain
from public documentation), ``layout`` (native file patterns, see :mod:`dataset_conversion.discovery`) and
``labels``: ``{canonical taxonomy name: native voxel value or [values]}``; a list makes an nnU-Net region
(the organ that contains its tumour). Voxel values are kept as they are in the native label maps.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from dataset_conversion.region_labels import all_values, normalise, order_supersets_first
from dataset_conversion import DATA_DIR
from nnunetv2_openvocab.prompts.taxonomy import Taxonomy, load_taxonomy

LABEL_TABLE_DIR = DATA_DIR / "label_tables"


@dataclass(frozen=True)
class LabelTable:
    key: str
    dataset: str
    case_prefix: str
    labels: Dict[str, Tuple[int, ...]]  # superset-first order
    source: str
    licence: str
    reference: str
    uncertain: Optional[str] = None
    layout: dict = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return LABEL_TABLE_DIR / f"{self.key}.json"

    @property
    def allowed_values(self) -> Tuple[int, ...]:
        """Voxel values a label map of this dataset may contain (background included)."""
        return (0, *all_values(self.labels))

    def provenance(self) -> dict:
        return {"source": self.source, "licence": self.licence, "reference": self.reference}

    def check(self, taxonomy: Optional[Taxonomy] = None) -> None:
        """Raise if a name is not canonical or the values are not 1..N (nnU-Net requires consecutive labels)."""
        taxonomy = taxonomy or load_taxonomy()
        unknown = [name for name in self.labels if name not in taxonomy]
        if unknown:
            raise ValueError(f"{self.path}: label names {unknown} are not in the taxonomy; use canonical names "
                             f"(see data/taxonomy.json) or add them to data/taxonomy_overrides.json.")
        values = all_values(self.labels)
        if values != list(range(1, len(values) + 1)):
            raise ValueError(f"{self.path}: voxel values must be consecutive from 1 for nnU-Net, found {values}; "
                             f"fix the 'labels' values.")


def label_table_keys() -> List[str]:
    return sorted(p.stem for p in LABEL_TABLE_DIR.glob("*.json"))


def load_label_table(key: str) -> LabelTable:
    path = LABEL_TABLE_DIR / f"{key}.json"
    if not path.is_file():
        raise FileNotFoundError(f"No label table {path}; available: {', '.join(label_table_keys())}.")
    data = json.loads(path.read_text(encoding="utf-8"))
    missing = [k for k in ("dataset", "case_prefix", "source", "licence", "reference", "labels") if k not in data]
    if missing:
        raise ValueError(f"{path} lacks the keys {missing}; see the format in dataset_conversion/label_tables.py.")
    return LabelTable(key=key, dataset=data["dataset"], case_prefix=data["case_prefix"],
                      labels=order_supersets_first(normalise(data["labels"])), source=data["source"],
                      licence=data["licence"], reference=data["reference"], uncertain=data.get("uncertain"),
                      layout=data.get("layout", {}))
