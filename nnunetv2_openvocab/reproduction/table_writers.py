"""A reproduced table in the paper's layout, the paper's published value beside each of ours, as markdown, CSV and
(Table VIII) a bar chart. Columns: the paper's, then any of ours the paper lacks (smoke-scale prompt sets)."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nnunetv2_openvocab.atomic_files import atomic_write
from nnunetv2_openvocab.reproduction.tables import PaperTable, published_values

MISSING = "-"


def table_cells(table: PaperTable, runs: List[int], run_folder: Path) -> Dict:
    """{"columns": [...], "rows": [{"label", "run", "paper": {column: v}, "ours": {column: v}}]}."""
    published = published_values()[table.name]
    rows = []
    for row in table.rows(runs):
        folder = run_folder / f"T8_{row.run}"
        ours = table.ours(folder) if folder.is_dir() else {}
        rows.append({"label": row.label, "run": row.run, "paper": published["rows"][row.published], "ours": ours})
    columns = list(rows[0]["paper"])
    columns += [c for row in rows for c in row["ours"] if c not in columns]
    return {"table": table.name, "title": table.title, "source": published["source"], "columns": columns,
            "rows": rows}


def shown(value: Optional[float]) -> str:
    return MISSING if value is None else f"{value:.1f}"


def header(cells: Dict) -> List[str]:
    return ["row", "run", *[f"{column} ({who})" for column in cells["columns"] for who in ("paper", "ours")]]


def lines(cells: Dict) -> List[List[str]]:
    return [[row["label"], f"T8_{row['run']}",
             *[shown(row[who].get(column)) for column in cells["columns"] for who in ("paper", "ours")]]
            for row in cells["rows"]]


def markdown(cells: Dict, scale: str) -> str:
    head = header(cells)
    text = [f"# Table {cells['table']}: {cells['title']}", "",
            f"Paper: {cells['source']}. Ours: {scale} scale, each cell from the run folder's evaluation summary "
            f"(`T8_<row>/evaluation/summary.json`, `T8_<row>/unseen_*/unseen_summary.json`); '-' = no run or not "
            f"evaluated.", "", "| " + " | ".join(head) + " |", "| --- | --- |" + " ---: |" * (len(head) - 2)]
    text += ["| " + " | ".join(line) + " |" for line in lines(cells)]
    return "\n".join(text) + "\n"


def write_csv(cells: Dict, path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header(cells))
    writer.writerows(lines(cells))
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())


def write_chart(cells: Dict, path: Path, column: str) -> None:
    """Grouped bars of one column per row: the paper's value and ours (missing = no bar)."""
    figure = Figure(figsize=(max(5.0, 1.2 * len(cells["rows"])), 3.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    x = np.arange(len(cells["rows"]))
    for offset, who in ((-0.2, "paper"), (0.2, "ours")):
        values = [row[who].get(column) for row in cells["rows"]]
        axes.bar(x + offset, [np.nan if v is None else v for v in values], 0.4, label=who)
    axes.set_xticks(x, [row["label"] for row in cells["rows"]])
    axes.set_ylabel(f"{column} DSC (%)")
    axes.set_ylim(0, 100)
    axes.legend()
    figure.tight_layout()
    with atomic_write(path, binary=True) as handle:
        figure.savefig(handle, format="png", dpi=100)


def write_table(cells: Dict, output_folder: Path, scale: str) -> Dict[str, Path]:
    stem = output_folder / f"table_{cells['table']}_{scale}"
    paths = {"markdown": stem.with_suffix(".md"), "csv": stem.with_suffix(".csv")}
    with atomic_write(paths["markdown"]) as handle:
        handle.write(markdown(cells, scale))
    write_csv(cells, paths["csv"])
    if cells["table"] == "VIII":
        paths["png"] = stem.with_suffix(".png")
        write_chart(cells, paths["png"], "Finetuning")
    return paths
