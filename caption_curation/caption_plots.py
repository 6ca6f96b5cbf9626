"""PNG figures of the curation statistics, in the spirit of the paper's Fig. 1b (top captions) and
Fig. 1c (organ distribution), plus captions per report before and after the RadLex filter."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display: must run on clusters
import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice)

from nnunetv2_openvocab.atomic_files import atomic_write  # noqa: E402

_LABEL_CHARS = 70


def _save(figure, path: Path) -> None:
    with atomic_write(path, binary=True) as handle:
        figure.savefig(handle, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)


def _short(text: str) -> str:
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def plot_top_captions(top_captions: list[dict], path: Path) -> None:
    labels = [_short(entry["caption"]) for entry in top_captions][::-1]
    counts = [entry["count"] for entry in top_captions][::-1]
    figure, axes = plt.subplots(figsize=(10, 1.5 + 0.17 * max(len(labels), 1)))
    axes.barh(range(len(labels)), counts, color="#4C72B0")
    axes.set_yticks(range(len(labels)), labels, fontsize=7)
    axes.set_ylim(-0.6, len(labels) - 0.4)
    axes.set_xlabel("reports with this caption (kept by the RadLex filter and balancing)")
    axes.set_title(f"Top {len(labels)} captions")
    axes.grid(axis="x", alpha=0.3)
    _save(figure, path)


def plot_top_organs(top_organs: list[dict], path: Path) -> None:
    organs = [entry["organ"] for entry in top_organs]
    percents = [100 * entry["fraction"] for entry in top_organs]
    figure, axes = plt.subplots(figsize=(10, 5))
    bars = axes.bar(range(len(organs)), percents, color="#55A868")
    axes.bar_label(bars, labels=[f"{p:.1f}" for p in percents], fontsize=7, padding=2)
    axes.set_xticks(range(len(organs)), organs, rotation=45, ha="right")
    axes.set_ylabel("% of kept captions naming the organ")
    axes.set_title(f"Top {len(organs)} organs / tissues in the captions")
    axes.grid(axis="y", alpha=0.3)
    _save(figure, path)


def plot_captions_per_report(captions_per_report: dict, path: Path) -> None:
    figure, axes = plt.subplots(figsize=(10, 4.5))
    width = 0.42
    stages = (("before_filter", "#C44E52", -width / 2), ("after_filter", "#4C72B0", width / 2))
    for stage, color, offset in stages:
        summary = captions_per_report[stage]
        counts = [int(k) for k in summary["histogram"]]
        reports = list(summary["histogram"].values())
        label = f"{stage.replace('_', ' ')} (mean {summary['mean']:.1f})"
        axes.bar([c + offset for c in counts], reports, width=width, color=color, label=label)
    axes.set_xlabel("captions per report")
    axes.set_ylabel("reports")
    axes.set_title("Captions per report before and after the RadLex filter (with balancing, if on)")
    axes.legend()
    axes.grid(axis="y", alpha=0.3)
    _save(figure, path)


def plot_all(stats: dict, folder: Path) -> list[Path]:
    paths = [folder / "top_captions.png", folder / "top_organs.png", folder / "captions_per_report.png"]
    plot_top_captions(stats["top_captions"], paths[0])
    plot_top_organs(stats["top_organs"], paths[1])
    plot_captions_per_report(stats["captions_per_report"], paths[2])
    return paths
