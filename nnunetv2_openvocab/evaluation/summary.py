"""Aggregate per-case rows into per-prompt means and lesion detection scores (plain dicts, NaN-aware).

A row is one (case, prompt) pair with ``status`` one of ``STATUSES``. Only "evaluated" rows enter means;
within them, NaN metrics (reference and prediction both empty) are left out and counted separately.
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Sequence

import numpy as np

from nnunetv2_openvocab.evaluation.metrics import detection_scores, is_detected
from nnunetv2_openvocab.evaluation.prompt_sets import PromptSet

EVALUATED, NOT_ANNOTATED, MISSING_PREDICTION = "evaluated", "not_annotated", "missing_prediction"
STATUSES = (EVALUATED, NOT_ANNOTATED, MISSING_PREDICTION)
METRICS = ("dice", "nsd")


def nan_mean(values: Sequence[float]) -> float:
    """Mean of the non-NaN values; NaN (without a warning) when there are none."""
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def with_detection_calls(rows: Sequence[Mapping], prompt_set: PromptSet, threshold_ml: float) -> List[Dict]:
    """Copies of ``rows`` with reference_positive / predicted_positive set on evaluated lesion rows (else None)."""
    lesion_prompts = {p.prompt for p in prompt_set.prompts if p.is_lesion}
    out = []
    for row in rows:
        scored = row["prompt"] in lesion_prompts and row["status"] == EVALUATED
        out.append({
            **row,
            "reference_positive": row["reference_ml"] > 0 if scored else None,
            "predicted_positive": is_detected(row["largest_prediction_component_ml"], threshold_ml) if scored else None,
        })
    return out


def _prompt_means(rows: Sequence[Mapping]) -> Dict:
    evaluated = [r for r in rows if r["status"] == EVALUATED]
    means = {m: nan_mean([r[m] for r in evaluated]) for m in METRICS}
    counts = {f"n_{m}": sum(not math.isnan(r[m]) for r in evaluated) for m in METRICS}
    return {
        **means,
        "n_evaluated": len(evaluated),
        **counts,
        "n_not_annotated": sum(r["status"] == NOT_ANNOTATED for r in rows),
        "n_missing_prediction": sum(r["status"] == MISSING_PREDICTION for r in rows),
    }


def summarise(rows: Sequence[Mapping], prompt_set: PromptSet, threshold_ml: float) -> Dict:
    """Per-prompt means, the foreground mean over prompts, and detection scores of lesion prompts.

    ``rows`` must already carry detection calls (``with_detection_calls``).
    """
    by_prompt = {p.prompt: [r for r in rows if r["prompt"] == p.prompt] for p in prompt_set.prompts}
    mean = {prompt: _prompt_means(prompt_rows) for prompt, prompt_rows in by_prompt.items()}
    foreground_mean = {m: nan_mean([v[m] for v in mean.values()]) for m in METRICS}
    detection = {}
    for p in prompt_set.prompts:
        if p.is_lesion:
            calls = [(r["reference_positive"], r["predicted_positive"]) for r in by_prompt[p.prompt]
                     if r["status"] == EVALUATED]
            detection[p.prompt] = {**detection_scores(calls).as_dict(), "threshold_ml": threshold_ml}
    return {"mean": mean, "foreground_mean": {**foreground_mean, "n_prompts": len(mean)}, "detection": detection}
