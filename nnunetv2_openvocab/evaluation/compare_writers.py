"""Write a comparison of two evaluations as CSV, JSON, markdown and one PNG, each file atomically.

Files (in the output folder):
    comparison.csv   one row per (level, name, metric): ``CSV_COLUMNS``; floats to 6 significant digits, NaN "nan"
    comparison.json  settings and rows; NaN written as null
    comparison.md    per level (prompt, Table II category, all prompts): means of A and B, difference B - A and
                     both p-values, for DSC and NSD (percent)
    comparison.png   mean differences B - A per prompt, category and all prompts, DSC and NSD side by side;
                     bars with a t-test p < alpha are drawn solid, the others hatched
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Dict, List, Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nnunetv2_openvocab.atomic_files import atomic_write
from nnunetv2_openvocab.evaluation.compare import LEVELS
from nnunetv2_openvocab.evaluation.report_writers import percent, write_json

CSV_COLUMNS = ("level", "name", "metric", "n_cases", "mean_a", "mean_b", "mean_difference", "t_statistic",
               "t_pvalue", "wilcoxon_statistic", "wilcoxon_pvalue")
OUTPUT_FILES = {"csv": "comparison.csv", "json": "comparison.json", "markdown": "comparison.md",
                "png": "comparison.png"}
LEVEL_TITLES = {"prompt": "Per prompt", "category": "Per Table II category", "all": "All prompts"}
METRIC_LABELS = {"dice": "DSC", "nsd": "NSD"}


def _p(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3g}"


def _signed_percent(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:+.2f}"


def _by_name(rows: List[Mapping], level: str) -> Dict[str, Dict[str, Mapping]]:
    grouped: Dict[str, Dict[str, Mapping]] = {}
    for row in rows:
        if row["level"] == level:
            grouped.setdefault(row["name"], {})[row["metric"]] = row
    return grouped


def markdown_report(comparison: Mapping, alpha: float) -> str:
    settings = comparison["settings"]
    lines = [
        "# Comparison of two evaluations",
        "",
        f"A: `{settings['evaluation_a']}`  ",
        f"B: `{settings['evaluation_b']}`  ",
        f"{settings['cases']} cases; NSD at {settings['tolerance_mm']:g} mm. Difference = B - A in percentage "
        f"points (positive: B scores higher); p-values of the paired t-test (t) and the Wilcoxon signed-rank "
        f"test (W) over cases; * marks p < {alpha:g} in the t-test.",
    ]
    header = " | ".join(f"{label} A | {label} B | Δ{label} | p (t) | p (W)" for label in METRIC_LABELS.values())
    for level in LEVELS:
        grouped = _by_name(comparison["rows"], level)
        if not grouped:
            continue
        lines += ["", f"## {LEVEL_TITLES[level]}", "", f"| {level} | cases | {header} |",
                  "| --- | ---: |" + " ---: |" * 5 * len(METRIC_LABELS)]
        for name, by_metric in grouped.items():
            cells = []
            for metric in METRIC_LABELS:
                row = by_metric[metric]
                star = "*" if not math.isnan(row["t_pvalue"]) and row["t_pvalue"] < alpha else ""
                cells += [percent(row["mean_a"]), percent(row["mean_b"]), _signed_percent(row["mean_difference"]) + star,
                          _p(row["t_pvalue"]), _p(row["wilcoxon_pvalue"])]
            n_cases = max(row["n_cases"] for row in by_metric.values())
            lines.append(f"| {name} | {n_cases} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_csv(rows: List[Mapping], path: Path) -> None:
    with atomic_write(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})


def write_plot(comparison: Mapping, alpha: float, path: Path) -> None:
    """Horizontal bars of B - A per prompt, category and all prompts; one panel per metric."""
    labels = [f"{name} (Table II)" if level == "category" else name
              for level in LEVELS for name in _by_name(comparison["rows"], level)]
    figure = Figure(figsize=(10, 1.5 + 0.3 * len(labels)), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    panels = figure.subplots(1, len(METRIC_LABELS), sharey=True, squeeze=False)[0]
    y = np.arange(len(labels))[::-1]
    for axes, (metric, label) in zip(panels, METRIC_LABELS.items()):
        rows = [row for row in comparison["rows"] if row["metric"] == metric]
        differences = [100 * row["mean_difference"] for row in rows]
        colours = ["#4C72B0" if d >= 0 else "#C44E52" for d in differences]
        bars = axes.barh(y, differences, color=colours)
        for bar, row in zip(bars, rows):
            if math.isnan(row["t_pvalue"]) or row["t_pvalue"] >= alpha:
                bar.set_hatch("//")
                bar.set_alpha(0.5)
        axes.axvline(0, color="black", linewidth=0.8)
        axes.set_yticks(y, labels, fontsize=8)
        axes.set_xlabel(f"Δ{label} = B - A (percentage points)")
        axes.set_title(f"{label}: solid bars p < {alpha:g} (paired t-test)", fontsize=9)
        axes.grid(axis="x", alpha=0.3)
    figure.suptitle(f"B: {Path(comparison['settings']['evaluation_b']).name}  vs  "
                    f"A: {Path(comparison['settings']['evaluation_a']).name}", fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    with atomic_write(path, binary=True) as handle:
        handle.write(buffer.getvalue())


def write_comparison(comparison: Mapping, output_folder: Path, alpha: float) -> Dict[str, Path]:
    """Write all four files; returns {kind: path}."""
    output_folder.mkdir(parents=True, exist_ok=True)
    paths = {kind: output_folder / name for kind, name in OUTPUT_FILES.items()}
    write_csv(comparison["rows"], paths["csv"])
    write_json(comparison, paths["json"])
    with atomic_write(paths["markdown"]) as handle:
        handle.write(markdown_report(comparison, alpha))
    write_plot(comparison, alpha, paths["png"])
    return paths
