"""Write an evaluation summary as CSV, JSON, a markdown table and a PNG bar chart, each file atomically.

Files (in the output folder):
    metrics_per_case.csv   one row per (case, prompt): ``CSV_COLUMNS``; targets joined by "+", floats to 6
                           significant digits, NaN as "nan"
    summary.json           the whole summary; NaN written as null
    summary.md             mean DSC / NSD per prompt (percent), Table II's categories (TotalSegmentator labels)
                           and the lesion detection table
    mean_dsc_nsd.png       bar chart of mean DSC and NSD per prompt
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nnunetv2_openvocab.atomic_files import atomic_write, write_text_atomic

CSV_COLUMNS = (
    "case", "prompt", "kind", "targets", "status", "dice", "nsd", "reference_ml", "prediction_ml",
    "largest_prediction_component_ml", "reference_positive", "predicted_positive",
)
OUTPUT_FILES = {
    "csv": "metrics_per_case.csv",
    "json": "summary.json",
    "markdown": "summary.md",
    "png": "mean_dsc_nsd.png",
}


def _json_safe(value):
    """NaN/inf -> None and numpy scalars -> Python, recursively (strict JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(summary: Mapping, path: Path) -> None:
    with atomic_write(path) as handle:
        json.dump(_json_safe(summary), handle, indent=2, allow_nan=False)


def write_csv(rows: List[Mapping], path: Path) -> None:
    with atomic_write(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            formatted = {k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()}
            writer.writerow({**formatted, "targets": "+".join(row["targets"])})


def write_paper_layout_table(built: Mapping, folder: Path, name: str, notes: Sequence[str] = ()) -> Dict[str, Path]:
    """A table already laid out as the paper's (``built``: title, header, rows of strings) as ``<name>.md`` (title,
    pipe table, then ``notes``) and ``<name>.csv`` (header and rows)."""
    header, rows = built["header"], built["rows"]
    lines = [built["title"], "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", *notes] if notes else []
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    paths = {"markdown": Path(folder) / f"{name}.md", "csv": Path(folder) / f"{name}.csv"}
    write_text_atomic(paths["markdown"], "\n".join(lines) + "\n")
    write_text_atomic(paths["csv"], buffer.getvalue())
    return paths


def percent(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def _table2_lines(table2: Mapping) -> List[str]:
    """Table II's layout: one column per category, then Avg; rows DSC, NSD and the number of prompts."""
    categories = list(table2["categories"])
    cells = {metric: [percent(table2["categories"][c][metric]) for c in categories] + [percent(table2["average"][metric])]
             for metric in ("dice", "nsd")}
    return [
        "",
        f"## TotalSegmentator categories (Table II; TotalSegmentator {table2['version']} class groups)",
        "",
        "| | " + " | ".join(c.capitalize() for c in categories) + " | Avg |",
        "| --- |" + " ---: |" * (len(categories) + 1),
        "| DSC (%) | " + " | ".join(cells["dice"]) + " |",
        "| NSD (%) | " + " | ".join(cells["nsd"]) + " |",
        "| prompts | " + " | ".join(str(len(table2["categories"][c]["prompts"])) for c in categories) + " | |",
    ]


def markdown_tables(summary: Mapping, routes: Optional[Mapping[str, str]] = None) -> str:
    """Mean DSC / NSD per prompt, Table II's categories (if any), then (if any lesion prompt) the detection table.
    ``routes``: {prompt: how grounding answered it}, shown as a column when given."""
    route_header, route_rule = ("route | ", "--- | ") if routes is not None else ("", "")
    settings = summary["settings"]
    tolerance = settings["tolerance_mm"]
    lines = [
        f"# Evaluation: {settings['prompt_set']}",
        "",
        f"Means over cases (NaN-aware); NSD at {tolerance:g} mm tolerance at the original voxel spacing.",
        "",
        f"| prompt | targets | kind | {route_header}cases | DSC (%) | NSD@{tolerance:g}mm (%) |",
        f"| --- | --- | --- | {route_rule}---: | ---: | ---: |",
    ]
    for prompt in summary["prompts"]:
        mean = summary["mean"][prompt["prompt"]]
        route = f"{routes.get(prompt['prompt'], '-')} | " if routes is not None else ""
        lines.append(f"| {prompt['prompt']} | {' + '.join(prompt['targets'])} | {prompt['kind']} | {route}"
                     f"{mean['n_evaluated']} | {percent(mean['dice'])} | {percent(mean['nsd'])} |")
    foreground = summary["foreground_mean"]
    lines.append(f"| **mean of prompts** | | | {'| ' if routes is not None else ''}| {percent(foreground['dice'])} | "
                 f"{percent(foreground['nsd'])} |")
    if summary.get("table2"):
        lines += _table2_lines(summary["table2"])
    if summary["detection"]:
        lines += [
            "",
            f"## Lesion detection (positive: largest predicted component > "
            f"{settings['detection_threshold_ml']:g} ml)",
            "",
            "| prompt | TP | FN | TN | FP | sensitivity (%) | specificity (%) | harmonic mean (%) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for prompt, d in summary["detection"].items():
            lines.append(f"| {prompt} | {d['true_positives']} | {d['false_negatives']} | {d['true_negatives']} | "
                         f"{d['false_positives']} | {percent(d['sensitivity'])} | {percent(d['specificity'])} | "
                         f"{percent(d['harmonic_mean'])} |")
    return "\n".join(lines) + "\n"


def write_markdown(summary: Mapping, path: Path) -> None:
    with atomic_write(path) as handle:
        handle.write(markdown_tables(summary))


def write_bar_chart(summary: Mapping, path: Path) -> None:
    """Grouped bars of mean DSC and NSD per prompt (NaN drawn as a missing bar)."""
    prompts = [p["prompt"] for p in summary["prompts"]]
    tolerance = summary["settings"]["tolerance_mm"]
    x = np.arange(len(prompts))
    figure = Figure(figsize=(max(6.0, 0.6 * len(prompts) + 2), 4.5), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.38
    for offset, metric, label in ((-width / 2, "dice", "DSC"), (width / 2, "nsd", f"NSD @ {tolerance:g} mm")):
        bars = axes.bar(x + offset, [summary["mean"][p][metric] for p in prompts], width, label=label)
        axes.bar_label(bars, fmt="%.2f", fontsize=7)  # NaN bars get neither bar nor label
    axes.set_xticks(x, prompts, rotation=45, ha="right")
    axes.set_ylim(0, 1.15)  # headroom for the legend and bar labels
    axes.set_yticks(np.linspace(0, 1, 6))
    axes.set_ylabel("mean over cases")
    axes.set_title(f"{summary['settings']['prompt_set']}: mean DSC and NSD per prompt")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper right", ncol=2, fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    with atomic_write(path, binary=True) as handle:
        handle.write(buffer.getvalue())


def write_reports(summary: Mapping, rows: List[Mapping], output_folder: Path) -> Dict[str, Path]:
    """Write all four files; returns {kind: path}."""
    output_folder.mkdir(parents=True, exist_ok=True)
    paths = {kind: output_folder / name for kind, name in OUTPUT_FILES.items()}
    write_csv(rows, paths["csv"])
    write_json(summary, paths["json"])
    write_markdown(summary, paths["markdown"])
    write_bar_chart(summary, paths["png"])
    return paths
