"""``prediction_settings.json``: what a prediction run used and which cases it predicted, merged with earlier runs
into the same output folder (which must have used the same model and sliding-window settings)."""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from nnunetv2_openvocab.atomic_files import write_json_atomic
from nnunetv2_openvocab.json_input import read_json_file
from nnunetv2_openvocab.output_folder import OutputFolderError

SETTINGS_FILE = "prediction_settings.json"
# settings that must agree for two runs to share one output folder (their cases and reports are merged)
SHARED_SETTINGS = ("model_folder", "trainer", "folds", "patch_size", "tile_step_size", "mirror_axes", "text_encoder")


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
    return {**settings, "cases": {**previous_cases, **settings["cases"]}}


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
