"""``prediction_settings.json``: what a prediction run used, which cases it predicted and each finished case's
results (every prompt's presence and side check), merged with earlier runs into the same output folder (which must
have used the same model and sliding-window settings). The prompt report is rebuilt from these records, so it
covers every case in the folder: cases of earlier or concurrent runs and cases skipped by --continue_prediction."""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, Mapping

from nnunetv2_openvocab.atomic_files import write_json_atomic
from nnunetv2_openvocab.json_input import read_json_file
from nnunetv2_openvocab.output_folder import OutputFolderError

SETTINGS_FILE = "prediction_settings.json"
# settings that must agree for two runs to share one output folder (their cases and reports are merged)
SHARED_SETTINGS = ("model_folder", "trainer", "folds", "patch_size", "tile_step_size", "mirror_axes", "text_encoder")
RESULTS = "results"  # per case: {prompt: {"presence": Presence, "side_check": SideCheck or null}}


def merged_settings(path: Path, settings: dict) -> dict:
    """``settings`` plus the cases of an earlier run recorded in ``path``; refuses a folder that holds the
    predictions of another model or other sliding-window settings."""
    if not path.is_file():
        return settings
    damaged = f"delete {path} (the masks stay usable) or predict into a new -o."
    previous = read_json_file(path, damaged.capitalize())
    try:
        differing = [key for key in SHARED_SETTINGS if previous[key] != settings[key]]
        previous_cases = dict(previous["cases"])
    except (ValueError, KeyError, TypeError) as error:
        raise OutputFolderError(f"{path} is damaged ({error!r}); {damaged}") from None
    if not all(isinstance(case, dict) and isinstance(case.get("prompts"), list)
               and all(isinstance(prompt, str) for prompt in case["prompts"]) for case in previous_cases.values()):
        raise OutputFolderError(f"{path} is damaged (a case without its list of prompts); {damaged}")
    if differing:
        raise OutputFolderError(f"{path.parent} holds predictions made with other settings ({', '.join(differing)} "
                                f"differ, see {path}). Predict into a new -o, or empty that folder.")
    cases = {case_id: _with_recorded_results(entry, previous_cases.get(case_id))
             for case_id, entry in settings["cases"].items()}
    return {**settings, "cases": {**previous_cases, **cases}}


def _with_recorded_results(entry: dict, recorded: Mapping | None) -> dict:
    """A run's case entry with the results the folder recorded for its prompts: a case skipped as done keeps them,
    and a case predicted again overwrites them when it finishes (same model and settings, so the same answers)."""
    results = (recorded or {}).get(RESULTS) or {}
    kept = {prompt: result for prompt, result in results.items() if prompt in entry["prompts"]}
    stripped = {key: value for key, value in entry.items() if key != RESULTS}
    return {**stripped, RESULTS: kept} if kept else stripped


@contextmanager
def locked_records(folder: Path) -> Iterator[None]:
    """Hold the output folder's lock (POSIX ``flock`` on the folder itself, so no lock file lands among the
    outputs): runs predicting into one -o at the same time take turns to read, merge and write the shared records,
    so no run's cases are lost."""
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def record_settings(folder: Path, settings: dict) -> dict:
    """Merge ``settings`` with what the folder records now and write the result, under the folder's lock."""
    with locked_records(folder):
        merged = merged_settings(folder / SETTINGS_FILE, settings)
        write_json_atomic(folder / SETTINGS_FILE, merged)
    return merged


def record_case_results(folder: Path, case_id: str, results: Mapping[str, dict]) -> None:
    """Record a finished case's answers ({prompt: {"presence": {...}, "side_check": {...} or None}}) in the folder's
    settings, under the folder's lock; written after the case's outputs, so a run killed later leaves the record of
    every case it finished. Plain dicts: this module stays free of torch, for the processes that share a folder."""
    path = folder / SETTINGS_FILE
    with locked_records(folder):
        recorded = read_json_file(path, f"Delete {path} (the masks stay usable) or predict into a new -o.")
        recorded["cases"].setdefault(case_id, {"inputs": [], "prompts": list(results)})[RESULTS] = dict(results)
        write_json_atomic(path, recorded)


def recorded_results(settings: Mapping) -> Dict[str, Mapping[str, dict]]:
    """{case: {prompt: {"presence": ..., "side_check": ...}}} of every case the settings record results for."""
    results = {case_id: case.get(RESULTS) for case_id, case in settings["cases"].items()}
    return {case_id: result for case_id, result in results.items() if result}
