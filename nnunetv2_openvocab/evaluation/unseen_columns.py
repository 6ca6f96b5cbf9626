"""Tables VI/VII side by side: each unseen prompt scored by the text route (the paper's column: the model's text
query, as OpenVocabCT answers every prompt) and by the grounded route with the set held out of the taxonomy look-up
(ours: how grounding generalises, never a look-up of the prompt's own stored text).

Files (in the evaluation's output folder):
    unseen_summary.json   {"columns": {column: label}, "rows": [{prompt, targets, kind, route, <column>_dice, ...}],
                           "mean": {column: {dice, nsd}}}; NaN as null
    unseen_summary.md     the same as a markdown table, the paper's column first and labelled so
    unseen_dsc.png        grouped bars of mean DSC per prompt, one colour per column
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Dict, Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nnunetv2_openvocab.atomic_files import atomic_write
from nnunetv2_openvocab.evaluation.report_writers import percent, write_json

TEXT_COLUMN, GROUNDED_COLUMN = "text", "grounded_held_out"
COLUMN_LABELS = {
    TEXT_COLUMN: "text route (paper's column)",
    GROUNDED_COLUMN: "grounded, set held out (ours)",
}
OUTPUT_FILES = {"json": "unseen_summary.json", "markdown": "unseen_summary.md", "png": "unseen_dsc.png"}


def side_by_side(summaries: Mapping[str, Mapping], routes: Mapping[str, str]) -> Dict:
    """One row per prompt with each column's mean DSC and NSD; ``routes``: how the grounded column answered each
    prompt (label, union or text)."""
    first = next(iter(summaries.values()))
    rows = []
    for prompt in first["prompts"]:
        row = {"prompt": prompt["prompt"], "targets": prompt["targets"], "kind": prompt["kind"],
               "route": routes.get(prompt["prompt"], "-")}
        for column, summary in summaries.items():
            mean = summary["mean"][prompt["prompt"]]
            row.update({f"{column}_dice": mean["dice"], f"{column}_nsd": mean["nsd"]})
        rows.append(row)
    return {"columns": {column: COLUMN_LABELS[column] for column in summaries},
            "tolerance_mm": first["settings"]["tolerance_mm"], "rows": rows,
            "mean": {column: {"dice": s["foreground_mean"]["dice"], "nsd": s["foreground_mean"]["nsd"]}
                     for column, s in summaries.items()}}


def markdown_table(table: Mapping) -> str:
    columns, tolerance = list(table["columns"]), table["tolerance_mm"]
    header = " | ".join(f"DSC (%) {table['columns'][c]} | NSD@{tolerance:g}mm (%) {table['columns'][c]}"
                        for c in columns)
    lines = ["# Unseen prompts: the paper's text route and the held-out grounded route", "",
             "The text route answers every prompt with its own text query (OpenVocabCT, Tables VI/VII). The grounded "
             "route grounds it with the evaluated set's prompts and recorded synonyms held out of the taxonomy; "
             "'route' is how grounding then answered it.", "",
             f"| prompt | targets | kind | route | {header} |", "| --- | --- | --- | --- |" + " ---: |" * 2 * len(columns)]
    for row in table["rows"]:
        cells = " | ".join(f"{percent(row[f'{c}_dice'])} | {percent(row[f'{c}_nsd'])}" for c in columns)
        lines.append(f"| {row['prompt']} | {' + '.join(row['targets'])} | {row['kind']} | {row['route']} | {cells} |")
    means = " | ".join(f"{percent(table['mean'][c]['dice'])} | {percent(table['mean'][c]['nsd'])}" for c in columns)
    lines.append(f"| **mean of prompts** | | | | {means} |")
    return "\n".join(lines) + "\n"


def write_chart(table: Mapping, path: Path) -> None:
    prompts = [row["prompt"] for row in table["rows"]]
    columns = list(table["columns"])
    x, width = np.arange(len(prompts)), 0.8 / len(columns)
    figure = Figure(figsize=(max(6.0, 0.7 * len(prompts) + 2), 4.5), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for index, column in enumerate(columns):
        offset = (index - (len(columns) - 1) / 2) * width
        bars = axes.bar(x + offset, [row[f"{column}_dice"] for row in table["rows"]], width,
                        label=table["columns"][column])
        axes.bar_label(bars, fmt="%.2f", fontsize=7)
    axes.set_xticks(x, prompts, rotation=45, ha="right")
    axes.set_ylim(0, 1.15)
    axes.set_ylabel("mean DSC over cases")
    axes.set_title("Unseen prompts: text route (paper) vs grounded with the set held out")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper right", fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    with atomic_write(path, binary=True) as handle:
        handle.write(buffer.getvalue())


def write_side_by_side(table: Mapping, output_folder: Path) -> Dict[str, str]:
    paths = {kind: Path(output_folder) / name for kind, name in OUTPUT_FILES.items()}
    write_json(table, paths["json"])
    with atomic_write(paths["markdown"]) as handle:
        handle.write(markdown_table(table))
    write_chart(table, paths["png"])
    return {kind: str(path) for kind, path in paths.items()}

