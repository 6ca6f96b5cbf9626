"""Evaluate a folder of per-prompt binary predictions against nnU-Net reference label maps.

References are ``<case><file_ending>`` label maps; predictions are the binary masks that
``nnUNetv2_openvocab_predict`` writes, named ``prompt_file_name(case, prompt, file_ending)``, or, for a case with a
``<case><file_ending>`` label map in the prediction folder (stock ``nnUNetv2_predict``, nnU-Net's
``fold_k/validation``), that label map in dataset.json's label values. For each case and prompt the reference
(and a label map's predicted) mask is the union of the prompt's target labels' voxel values. A prompt is
skipped in a case (status "not_annotated") when ``annotated_labels`` says one of its targets was not
annotated there: its absence is unknown, not background. Voxels of nnU-Net's ``ignore`` label are
removed from the prediction. Predictions must have the reference's exact geometry.

``evaluate_folder`` is the plain function behind ``nnUNetv2_openvocab_evaluate`` (and the unseen-prompt
benchmark); it returns the summary dict that it also writes as ``summary.json``.
"""
from __future__ import annotations

import logging
import multiprocessing
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from nnunetv2.configuration import default_num_processes
from tqdm import tqdm

from nnunetv2_openvocab.evaluation.mask_io import as_binary_mask, check_same_geometry, read_image
from nnunetv2_openvocab.evaluation.metrics import (
    DEFAULT_DETECTION_THRESHOLD_ML, DEFAULT_TOLERANCE_MM, CaseMetrics, evaluate_binary_case,
)
from nnunetv2_openvocab.evaluation.prompt_sets import (
    IGNORE_LABEL, EvaluationPrompt, PromptSet, default_prompt_set, load_prompt_set, mark_detection_prompts,
    structure_label_names,
)
from nnunetv2_openvocab.evaluation.report_writers import write_reports
from nnunetv2_openvocab.evaluation.summary import (
    EVALUATED, MISSING_PREDICTION, NOT_ANNOTATED, summarise, with_detection_calls,
)
from nnunetv2_openvocab.evaluation.table2_categories import category_summary, detect_category_map, prompt_categories
from nnunetv2_openvocab.json_input import read_json_file
from nnunetv2_openvocab.output_folder import check_output_folder
from nnunetv2_openvocab.prompts.dataset_prompts import ANNOTATED_LABELS_KEY, label_values_by_name
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromptJob:
    prompt: EvaluationPrompt
    prediction_file: Path
    target_values: Tuple[int, ...]
    status: str  # EVALUATED (to do), NOT_ANNOTATED or MISSING_PREDICTION
    label_map: bool = False  # the prediction file is the case's label map: the prompt's mask is its target values


@dataclass(frozen=True)
class CaseJob:
    case: str
    reference_file: Path
    prompts: Tuple[PromptJob, ...]


def evaluate_case(job: CaseJob, tolerance_mm: float, ignore_values: Tuple[int, ...]) -> List[Dict]:
    """Rows of one case: metrics for each prompt to evaluate, NaN rows for skipped ones."""
    reference = read_image(job.reference_file)
    labels, spacing = reference[0], reference[1]["spacing"]
    ignored = np.isin(labels, ignore_values) if ignore_values else None
    rows, label_map = [], None
    for prompt_job in job.prompts:
        row = {"case": job.case, "prompt": prompt_job.prompt.prompt, "kind": prompt_job.prompt.kind,
               "targets": list(prompt_job.prompt.targets), "status": prompt_job.status}
        if prompt_job.status != EVALUATED:
            rows.append({**row, **{field.name: float("nan") for field in fields(CaseMetrics)}})
            continue
        if prompt_job.label_map:  # one label map answers every prompt of the case: read it once
            prediction = label_map = label_map or read_image(prompt_job.prediction_file)
        else:
            prediction = read_image(prompt_job.prediction_file)
        check_same_geometry(reference, prediction, job.reference_file, prompt_job.prediction_file)
        predicted = (np.isin(prediction[0], prompt_job.target_values) if prompt_job.label_map
                     else as_binary_mask(prediction[0], prompt_job.prediction_file))
        if ignored is not None:
            predicted &= ~ignored
        metrics = evaluate_binary_case(np.isin(labels, prompt_job.target_values), predicted, spacing, tolerance_mm)
        rows.append({**row, **asdict(metrics)})
    return rows


def load_dataset_json(dataset_json: Union[str, Path, Mapping]) -> Tuple[dict, str]:
    if isinstance(dataset_json, Mapping):
        return dict(dataset_json), "dataset.json"
    path = Path(dataset_json)
    return read_json_file(path, "Pass the raw dataset's dataset.json (-dj).", what="dataset.json"), str(path)


def _reference_cases(reference_folder: Path, file_ending: str) -> Dict[str, Path]:
    if not reference_folder.is_dir():
        raise FileNotFoundError(f"Reference folder {reference_folder} does not exist. Pass the labelsTr/labelsTs "
                                "folder with -ref.")
    files = sorted(p for p in reference_folder.iterdir()
                   if p.name.endswith(file_ending) and not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"No reference label maps ending in {file_ending!r} in {reference_folder}. Check -ref "
                                "and 'file_ending' in dataset.json.")
    return {p.name[: -len(file_ending)]: p for p in files}


def _plan(cases: Mapping[str, Path], prediction_folder: Path, prompt_set: PromptSet, dataset: Mapping,
          file_ending: str) -> List[CaseJob]:
    values_by_name = label_values_by_name(dataset["labels"])
    annotated = dataset.get(ANNOTATED_LABELS_KEY, {})
    jobs = []
    for case, reference_file in cases.items():
        annotated_here = set(annotated.get(case, values_by_name))
        label_map = prediction_folder / f"{case}{file_ending}"
        prompt_jobs = []
        for prompt in prompt_set.prompts:
            prediction_file = label_map if label_map.is_file() else \
                prediction_folder / prompt_file_name(case, prompt.prompt, file_ending)
            if not set(prompt.targets) <= annotated_here:
                status = NOT_ANNOTATED
            elif not prediction_file.is_file():
                status = MISSING_PREDICTION
            else:
                status = EVALUATED
            values = tuple(v for name in prompt.targets for v in values_by_name[name])
            prompt_jobs.append(PromptJob(prompt, prediction_file, values, status, label_map.is_file()))
        jobs.append(CaseJob(case, reference_file, tuple(prompt_jobs)))
    return jobs


def _check_predictions_present(jobs: Sequence[CaseJob], prediction_folder: Path, allow_missing: bool) -> None:
    missing = [p.prediction_file.name for job in jobs for p in job.prompts if p.status == MISSING_PREDICTION]
    if not any(p.status == EVALUATED for job in jobs for p in job.prompts):
        if not missing:
            raise ValueError("No (case, prompt) pair is annotated: every prompt targets a label that "
                             "'annotated_labels' in dataset.json leaves out. Evaluate prompts of annotated labels.")
        raise FileNotFoundError(
            f"No prediction to evaluate in {prediction_folder}: expected files such as {missing[:3]}, or label "
            "maps <case><file_ending>. Run nnUNetv2_openvocab_predict with the same prompts (or nnUNetv2_predict) "
            "and output into that folder.")
    if missing and not allow_missing:
        raise FileNotFoundError(
            f"{len(missing)} prediction file(s) missing in {prediction_folder}, e.g. {missing[:5]}. Predict those "
            "prompts for those cases, or pass --chill (allow_missing=True) to skip them.")
    if missing:
        logger.warning("Skipping %d missing prediction file(s), e.g. %s", len(missing), missing[:5])


def _run(jobs: Sequence[CaseJob], tolerance_mm: float, ignore_values: Tuple[int, ...],
         num_processes: int) -> List[Dict]:
    worker = partial(evaluate_case, tolerance_mm=tolerance_mm, ignore_values=ignore_values)
    progress = dict(total=len(jobs), desc="Evaluating cases", unit="case")
    if num_processes <= 1 or len(jobs) == 1:
        return [row for job in tqdm(jobs, **progress) for row in worker(job)]
    with multiprocessing.get_context("spawn").Pool(min(num_processes, len(jobs))) as pool:
        per_case = list(tqdm(pool.imap(worker, jobs), **progress))  # imap keeps case order
    return [row for rows in per_case for row in rows]


def evaluate_folder(
    reference_folder: Union[str, Path],
    prediction_folder: Union[str, Path],
    dataset_json: Union[str, Path, Mapping],
    output_folder: Optional[Union[str, Path]] = None,
    prompt_set: Union[None, str, Path, Mapping, PromptSet] = None,
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
    detection_prompts: Sequence[str] = (),
    detection_threshold_ml: float = DEFAULT_DETECTION_THRESHOLD_ML,
    num_processes: int = default_num_processes,
    allow_missing: bool = False,
    totalsegmentator_version: Optional[str] = None,
) -> Dict:
    """Dice and NSD per case and prompt, means per prompt, and detection scores for lesion prompts.

    ``prompt_set``: None (every label's canonical prompt), a prompt-set JSON path, its loaded dict, or a
    ``PromptSet``. ``detection_prompts`` adds lesion prompts by exact text. Returns a dict with keys
    settings, prompts, mean, foreground_mean, detection, table2, per_case (NaN as float NaN) and, when
    ``output_folder`` is given, output_files; the same content goes to the files listed in
    ``report_writers``. ``table2`` groups the means into Table II's categories when the labels are
    TotalSegmentator's (``totalsegmentator_version`` "v1"/"v2" forces a version; else detected), else None.
    """
    if tolerance_mm < 0 or detection_threshold_ml < 0:
        raise ValueError(f"tolerance_mm ({tolerance_mm}) and detection_threshold_ml ({detection_threshold_ml}) "
                         "must be >= 0.")
    if output_folder is not None:
        output_folder = check_output_folder(output_folder)
    dataset, dataset_source = load_dataset_json(dataset_json)
    file_ending = dataset.get("file_ending")
    if not isinstance(file_ending, str) or "labels" not in dataset:
        raise ValueError(f"{dataset_source}: needs nnU-Net's 'labels' and 'file_ending' (e.g. \".nii.gz\") keys.")
    if prompt_set is None:
        prompt_set = default_prompt_set(dataset, dataset_source)
    elif not isinstance(prompt_set, PromptSet):
        prompt_set = load_prompt_set(prompt_set, structure_label_names(dataset))
    prompt_set = mark_detection_prompts(prompt_set, detection_prompts)
    category_map = detect_category_map(structure_label_names(dataset), totalsegmentator_version)

    reference_folder, prediction_folder = Path(reference_folder), Path(prediction_folder)
    jobs = _plan(_reference_cases(reference_folder, file_ending), prediction_folder, prompt_set, dataset,
                 file_ending)
    _check_predictions_present(jobs, prediction_folder, allow_missing)
    ignore_values = label_values_by_name(dataset["labels"]).get(IGNORE_LABEL, ())
    rows = with_detection_calls(_run(jobs, tolerance_mm, ignore_values, num_processes), prompt_set,
                                detection_threshold_ml)
    aggregates = summarise(rows, prompt_set, detection_threshold_ml)
    table2 = None if category_map is None else category_summary(
        aggregates["mean"], prompt_categories(prompt_set, category_map), category_map)

    summary = {
        "settings": {
            "reference_folder": str(reference_folder), "prediction_folder": str(prediction_folder),
            "dataset_json": dataset_source, "prompt_set": prompt_set.name,
            "prompt_set_description": prompt_set.description, "tolerance_mm": tolerance_mm,
            "detection_threshold_ml": detection_threshold_ml,
            "detection_rule": "case positive when its largest 26-connected predicted component > threshold",
            "empty_rule": "Dice/NSD NaN when reference and prediction are both empty (left out of means)",
        },
        "prompts": [{"prompt": p.prompt, "targets": list(p.targets), "kind": p.kind, "is_lesion": p.is_lesion}
                    for p in prompt_set.prompts],
        **aggregates,
        "table2": table2,
        "per_case": rows,
    }
    if output_folder is not None:
        paths = write_reports(summary, rows, output_folder)
        summary["output_files"] = {kind: str(path) for kind, path in paths.items()}
    return summary
