"""Evaluate a trained model on another dataset's labels without fine-tuning (OpenVocabCT Tables IX/X).

The target's labels are mapped to the model's structures (``transfer_mapping``), the mappable ones are predicted with
their canonical prompts (``run_prediction``, text route by default: the paper's model has no taxonomy) and scored
against the target's label maps (``evaluate_folder``); unmappable labels are listed with their reason.
Output folder: ``predictions/`` (masks, prompt report), ``metrics/`` (evaluate_folder's CSV, JSON, markdown, PNG),
``transfer_summary.json`` and ``transfer_summary.md`` (per label: structure, prompt, mapping, DSC, NSD; then the
unmappable labels).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch
from nnunetv2.configuration import default_num_processes

from nnunetv2_openvocab.atomic_files import write_text_atomic
from nnunetv2_openvocab.constants import DEFAULT_STEP_SIZE
from nnunetv2_openvocab.evaluation.evaluate_folder import evaluate_folder, load_dataset_json
from nnunetv2_openvocab.evaluation.metrics import DEFAULT_TOLERANCE_MM
from nnunetv2_openvocab.evaluation.report_writers import percent, write_json
from nnunetv2_openvocab.evaluation.summary import METRICS
from nnunetv2_openvocab.evaluation.transfer_mapping import map_labels, transfer_prompt_set
from nnunetv2_openvocab.evaluation.transfer_tables import write_paper_table
from nnunetv2_openvocab.inference.model_loading import DEFAULT_CHECKPOINT, Fold
from nnunetv2_openvocab.inference.run_prediction import run_prediction
from nnunetv2_openvocab.output_folder import check_output_folder
from nnunetv2_openvocab.prompts.grounding import MATCH_THRESHOLD


def _label_rows(mappings, means: Mapping) -> List[Dict]:
    rows = []
    for mapping in mappings:
        scores = means.get(mapping.prompt, {}) if mapping.mappable else {}
        rows.append({**mapping.as_dict(), **{metric: scores.get(metric) for metric in METRICS},
                     "n_evaluated": scores.get("n_evaluated", 0)})
    return rows


def transfer_markdown(summary: Mapping) -> str:
    lines = [f"Model {summary['settings']['model_folder']} on {summary['settings']['target_dataset_json']} "
             f"(no fine-tuning; grounding {summary['settings']['grounding']})", "",
             "| label | structure | prompt | mapping | DSC (%) | NSD (%) |", "|---|---|---|---|---|---|"]
    for row in summary["labels"]:
        if row["mappable"]:
            lines.append(f"| {row['label']} | {row['structure']} | {row['prompt']} | {row['status']} | "
                         f"{percent(row['dice'])} | {percent(row['nsd'])} |")
    mean = summary["mean"]
    lines.append(f"| mean of mapped labels | | | | {percent(mean['dice'])} | {percent(mean['nsd'])} |")
    unmappable = [row for row in summary["labels"] if not row["mappable"]]
    lines += ["", f"Unmappable labels (not scored): {len(unmappable)}"]
    lines += [f"- {row['label']}: {row['status']}" + (f" ({row['structure']})" if row["structure"] else "")
              for row in unmappable]
    return "\n".join(lines) + "\n"


def evaluate_transfer(model_folder: Union[str, Path], images: Union[str, Path], reference_folder: Union[str, Path],
                      target_dataset_json: Union[str, Path], output_folder: Union[str, Path],
                      folds: Optional[Sequence[Fold]] = None, checkpoint_name: str = DEFAULT_CHECKPOINT,
                      step_size: float = DEFAULT_STEP_SIZE, use_mirroring: bool = True,
                      device: Optional[torch.device] = None, grounding: str = "text",
                      grounding_threshold: float = MATCH_THRESHOLD, tolerance_mm: float = DEFAULT_TOLERANCE_MM,
                      num_processes: int = default_num_processes, show_progress: bool = True,
                      paper_table: Optional[str] = None) -> Dict:
    """Map, predict and score; returns the summary also written as ``transfer_summary.json`` (keys settings, labels
    (one row per target label, unmappable ones with their reason and no scores), unmappable, mean, output_files).
    ``paper_table`` ("IX" or "X") also writes that table in the paper's layout (``transfer_tables``)."""
    output_folder = check_output_folder(output_folder)
    target, target_source = load_dataset_json(target_dataset_json)
    model_dataset, _ = load_dataset_json(Path(model_folder) / "dataset.json")
    mappings = map_labels(target, model_dataset)
    prompt_set = transfer_prompt_set(mappings, target_source)
    prompts = [entry["prompt"] for entry in prompt_set["prompts"]]
    run = run_prediction(model_folder, output_folder / "predictions", images, prompts, folds=folds,
                         checkpoint_name=checkpoint_name, step_size=step_size, use_mirroring=use_mirroring,
                         device=device, show_progress=show_progress, grounding=grounding,
                         grounding_threshold=grounding_threshold)
    scores = evaluate_folder(reference_folder, output_folder / "predictions", target, output_folder / "metrics",
                             prompt_set=prompt_set, tolerance_mm=tolerance_mm, num_processes=num_processes)
    summary = {
        "settings": {"model_folder": str(model_folder), "target_dataset_json": target_source, "images": str(images),
                     "reference_folder": str(reference_folder), "grounding": grounding,
                     "folds": None if folds is None else list(folds), "tolerance_mm": tolerance_mm,
                     "mapping_rule": "mapped when the taxonomy resolves the label's structure to the model's "
                                     "training labels (itself, or all its parts)"},
        "labels": _label_rows(mappings, scores["mean"]),
        "unmappable": [m.as_dict() for m in mappings if not m.mappable],
        "mean": {metric: scores["foreground_mean"][metric] for metric in METRICS},
        "prompt_report": [str(p) for p in run.report_files],
    }
    files = {"json": output_folder / "transfer_summary.json", "markdown": output_folder / "transfer_summary.md"}
    summary["output_files"] = {kind: str(path) for kind, path in files.items()}
    write_json(summary, files["json"])
    write_text_atomic(files["markdown"], transfer_markdown(summary))
    if paper_table is not None:
        summary["output_files"].update(write_paper_table(paper_table, summary, output_folder))
    return summary
