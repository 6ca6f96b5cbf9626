"""Score a model on prompts it never saw in training: predict an unseen-prompt set (prompts/unseen_sets.py) on
images and evaluate each prompt against the union of its target labels (OpenVocabCT Tables VI/VII), twice:
  * ``text``: every prompt answered by its own text query, as the paper's model does (the paper's column);
  * ``grounded_held_out``: grounding (``auto``) with the set's prompts and recorded synonyms held out of the taxonomy
    look-up, so no prompt is answered by finding its own stored text (how grounding generalises).
``--grounding auto`` without the hold-out would score a dictionary look-up: the shipped sets' synonyms are stored in
the taxonomy."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
from nnunetv2.configuration import default_num_processes

from nnunetv2_openvocab.atomic_files import write_json_atomic
from nnunetv2_openvocab.constants import DEFAULT_STEP_SIZE
from nnunetv2_openvocab.evaluation.evaluate_folder import evaluate_folder
from nnunetv2_openvocab.evaluation.metrics import DEFAULT_TOLERANCE_MM
from nnunetv2_openvocab.evaluation.prompt_sets import structure_label_names
from nnunetv2_openvocab.evaluation.unseen_columns import GROUNDED_COLUMN, TEXT_COLUMN, side_by_side, write_side_by_side
from nnunetv2_openvocab.inference.model_loading import DEFAULT_CHECKPOINT, Fold
from nnunetv2_openvocab.inference.run_prediction import run_prediction
from nnunetv2_openvocab.json_input import read_json_file
from nnunetv2_openvocab.prompts.grounding import MATCH_THRESHOLD
from nnunetv2_openvocab.prompts.unseen_sets import UNSEEN_DIR, load_unseen_set

logger = logging.getLogger(__name__)


def load_unseen_prompt_set(name_or_path: Union[str, Path]) -> Tuple[dict, str]:
    """(set content, the file it came from): a JSON file, else a shipped set by name."""
    path = Path(name_or_path)
    if not path.is_file():
        try:
            return load_unseen_set(str(name_or_path)), str(UNSEEN_DIR / f"{name_or_path}.json")
        except FileNotFoundError as error:
            raise FileNotFoundError(f"--set {name_or_path!r} is neither a file nor a shipped set ({error})") from None
    return read_json_file(path, "Format: see --help.", what="Unseen-prompt set"), str(path)


def applicable_entries(prompt_set: Mapping, label_names: Sequence[str]) -> Tuple[dict, list]:
    """The set restricted to entries whose targets all exist in ``label_names``, and the entries left out."""
    if not isinstance(prompt_set, Mapping) or not isinstance(prompt_set.get("prompts"), list):
        raise ValueError('An unseen-prompt set needs a "prompts" list: {"prompts": [{"prompt": "renal organs", '
                         '"targets": ["kidney_left", "kidney_right"], "kind": "merged"}]}.')
    kept, left_out = [], []
    for entry in prompt_set["prompts"]:
        targets = entry.get("targets") if isinstance(entry, Mapping) else None
        fits = isinstance(targets, list) and targets and set(targets) <= set(label_names)
        (kept if fits else left_out).append(entry)
    if not kept:
        raise ValueError(f"No entry of set {prompt_set.get('name')!r} targets only labels of this dataset "
                         f"({list(label_names)}). Pick a set written for these labels, e.g. --set example.")
    return {**prompt_set, "prompts": kept}, left_out


def evaluate_unseen_prompts(model_folder: Union[str, Path], images: Union[str, Path],
                            reference_folder: Union[str, Path], prompt_set: Union[str, Path],
                            output_folder: Union[str, Path],
                            dataset_json: Optional[Union[str, Path]] = None, folds: Optional[Sequence[Fold]] = None,
                            checkpoint_name: str = DEFAULT_CHECKPOINT, step_size: float = DEFAULT_STEP_SIZE,
                            use_mirroring: bool = True, device: Optional[torch.device] = None,
                            tolerance_mm: float = DEFAULT_TOLERANCE_MM, num_processes: int = default_num_processes,
                            show_progress: bool = True, grounding_threshold: float = MATCH_THRESHOLD) -> Dict:
    """Predict the applicable prompts of ``prompt_set`` on ``images`` by both routes and score them. Returns
    {"columns": {column: evaluate_folder's summary}, "table": the side-by-side table, "output_files",
    "left_out" (entries whose targets the dataset lacks), "routes" (how the grounded column answered each prompt),
    "prompt_report"}; per column ``predictions/<column>/`` and ``metrics/<column>/``."""
    output_folder = Path(output_folder)
    dataset_json = Path(dataset_json or Path(model_folder) / "dataset.json")
    dataset = read_json_file(dataset_json, "Pass the model's dataset.json (-dj).", what="dataset.json")
    content, source = load_unseen_prompt_set(prompt_set)
    applied, left_out = applicable_entries(content, structure_label_names(dataset))
    if left_out:
        logger.warning("Left out %d entries of %s whose targets are not labels of %s: %s", len(left_out), source,
                       dataset_json, [e.get("prompt") for e in left_out])
    prompts = [entry["prompt"] for entry in applied["prompts"]]
    columns = {TEXT_COLUMN: ("text", ()), GROUNDED_COLUMN: ("auto", tuple(prompts))}
    summaries, reports, routes = {}, [], {}
    for column, (grounding, held_out) in columns.items():
        run = run_prediction(model_folder, output_folder / "predictions" / column, images, prompts, folds=folds,
                             checkpoint_name=checkpoint_name, step_size=step_size, use_mirroring=use_mirroring,
                             device=device, show_progress=show_progress, grounding=grounding,
                             grounding_threshold=grounding_threshold, held_out_prompts=held_out)
        summaries[column] = evaluate_folder(reference_folder, output_folder / "predictions" / column, dataset,
                                            output_folder / "metrics" / column, prompt_set=applied,
                                            tolerance_mm=tolerance_mm, num_processes=num_processes)
        reports += [str(p) for p in run.report_files]
        if column == GROUNDED_COLUMN:
            routes = run.report.routes()
    table = side_by_side(summaries, routes)
    write_json_atomic(output_folder / "unseen_set.json", {"source": source, "evaluated": applied, "left_out": left_out})
    return {"columns": summaries, "table": table, "output_files": write_side_by_side(table, output_folder),
            "left_out": left_out, "routes": routes, "prompt_report": reports}
