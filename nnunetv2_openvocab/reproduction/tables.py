"""The table registry: each paper table, the Table VIII runs it needs, its rows and columns in the paper's layout,
and where each cell of ours comes from (a run's evaluation summary, never a constant; a missing run gives "-").

Adding a table is one ``PaperTable`` entry in ``TABLES`` (its published values in data/paper_published_values.json).
Tables II, VI and VII are read from Table VIII row 6's run (the paper's model): Table II from its evaluation's
category summary, VI/VII from its unseen-prompt evaluation's text route (the paper's column).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from nnunetv2_openvocab.paper_tables import ROWS

PUBLISHED_FILE = Path(__file__).resolve().parents[1] / "data" / "paper_published_values.json"
CATEGORIES = ("Vertebrae", "Cardiac", "Muscles", "Organs", "Ribs", "Avg")
TEXT_DICE = "text_dice"  # unseen_columns: the paper's column (text route)


@dataclass(frozen=True)
class TableRow:
    label: str       # as the paper names the row
    run: int         # the Table VIII row whose run fills it
    published: str   # the row's key in the published values


@dataclass(frozen=True)
class PaperTable:
    name: str
    title: str
    runs: Tuple[int, ...]                                  # Table VIII rows it needs (VIII: selectable by --rows)
    rows: Callable[[Sequence[int]], List[TableRow]]        # the table's rows for the selected runs
    ours: Callable[[Path], Dict[str, Optional[float]]]     # a run's folder -> {column: value in %}


def table_viii_rows(runs: Sequence[int]) -> List[TableRow]:
    return [TableRow(f"row {k}: {ROWS[k].name}", k, str(k)) for k in runs]


def paper_model_row(runs: Sequence[int]) -> List[TableRow]:
    return [TableRow("OpenVocabCT", 6, "OpenVocabCT")]


def _read(path: Path) -> Optional[dict]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _percent(value) -> Optional[float]:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(100 * value, 1)


def _mean(values: List[float]) -> Optional[float]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return sum(values) / len(values) if values else None


def unseen_rows(run_folder: Path) -> List[dict]:
    """The rows of every unseen-prompt evaluation of the run (one per unseen set)."""
    return [row for path in sorted(run_folder.glob("unseen_*/unseen_summary.json")) for row in _read(path)["rows"]]


def table_viii_cells(run_folder: Path) -> Dict[str, Optional[float]]:
    summary = _read(run_folder / "evaluation" / "summary.json")
    rows = unseen_rows(run_folder)
    by_kind = {kind: [r[TEXT_DICE] for r in rows if r["kind"] == kind] for kind in ("merged", "synonym")}
    return {"Finetuning": _percent(summary["foreground_mean"]["dice"]) if summary else None,
            "Merging": _percent(_mean(by_kind["merged"])) if by_kind["merged"] else None,
            "Synonyms": _percent(_mean(by_kind["synonym"])) if by_kind["synonym"] else None}


def table_ii_cells(run_folder: Path) -> Dict[str, Optional[float]]:
    summary = _read(run_folder / "evaluation" / "summary.json")
    table2 = (summary or {}).get("table2") or {}
    cells = {}
    for category in CATEGORIES:
        scores = table2.get("average") if category == "Avg" else table2.get("categories", {}).get(category.lower())
        for metric in ("DSC", "NSD"):
            cells[f"{category} {metric}"] = _percent((scores or {}).get("dice" if metric == "DSC" else "nsd"))
    return cells


def unseen_cells(kind: str) -> Callable[[Path], Dict[str, Optional[float]]]:
    def cells(run_folder: Path) -> Dict[str, Optional[float]]:
        rows = [r for r in unseen_rows(run_folder) if r["kind"] == kind]
        return {**{r["prompt"]: _percent(r[TEXT_DICE]) for r in rows},
                "Avg": _percent(_mean([r[TEXT_DICE] for r in rows])) if rows else None}
    return cells


TABLES: Dict[str, PaperTable] = {table.name: table for table in (
    PaperTable("VIII", "Ablation of pretraining and text-branch connector, DSC (%)", (1, 2, 3, 4, 5, 6),
               table_viii_rows, table_viii_cells),
    PaperTable("II", "Fine-tuning on TotalSegmentator, DSC and NSD (%) per category", (6,), paper_model_row,
               table_ii_cells),
    PaperTable("VI", "Training-unseen prompts, merging suborgans: text route, DSC (%)", (6,), paper_model_row,
               unseen_cells("merged")),
    PaperTable("VII", "Training-unseen prompts, synonyms: text route, DSC (%)", (6,), paper_model_row,
               unseen_cells("synonym")),
)}


def published_values() -> dict:
    return json.loads(PUBLISHED_FILE.read_text(encoding="utf-8"))
