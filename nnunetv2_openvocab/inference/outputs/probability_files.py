"""Per-prompt probability maps (``--save_probabilities``): nnU-Net's ``.npz`` convention, one prompt per file.

nnU-Net writes ``<case>.npz`` with one ``probabilities`` array of shape (classes, *spatial); stacking every
prompt would hold a prompts x volume buffer, so each prompt gets its own file, written as soon as its map
is computed::

    probabilities/<case>_<slug>.npz   key "probabilities": float16 sigmoid, shape and axis order of the array
                                      the image reader returned (SimpleITK: z, y, x), i.e. the original geometry
    probabilities/<case>.json         {"prompts": {prompt: file name}, "spacing": [...] per array axis, and the
                                      reader's geometry record (SimpleITK: "sitk_stuff" origin/direction)}

Read one back with ``np.load(path)["probabilities"].astype(np.float32)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np

from nnunetv2_openvocab.atomic_files import atomic_path, check_zip, write_json_atomic
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name

PROBABILITIES_FOLDER = "probabilities"
ARRAY_KEY = "probabilities"
GEOMETRY_KEYS = ("spacing", "sitk_stuff", "nibabel_stuff")


def probability_file(output_folder: Path, case_id: str, prompt: str) -> Path:
    return output_folder / PROBABILITIES_FOLDER / prompt_file_name(case_id, prompt, ".npz")


def geometry_file(output_folder: Path, case_id: str) -> Path:
    return output_folder / PROBABILITIES_FOLDER / f"{case_id}.json"


def write_probabilities(path: Path, probabilities: np.ndarray) -> None:
    with atomic_path(path, check=check_zip) as temporary:  # an .npz is a zip archive: its directory comes last
        np.savez_compressed(temporary, **{ARRAY_KEY: probabilities.astype(np.float16, copy=False)})


def _plain(value):
    """JSON-ready copy of a reader's geometry record (numpy arrays and tuples become lists)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(item) for item in value]
    return value.item() if isinstance(value, np.generic) else value


def write_geometry(path: Path, properties: dict, files: Dict[str, Path]) -> None:
    write_json_atomic(path, {"prompts": {prompt: file.name for prompt, file in files.items()},
                             **{key: _plain(properties[key]) for key in GEOMETRY_KEYS if key in properties}})
