"""Read the JSON files users give us (prompts files, dataset.json, plans.json, summaries, prompt sets) so that any
bad file is one ``JsonInputError`` naming it: missing, a folder, unreadable, not UTF-8, not JSON, nested deeper
than Python's parser recurses (``RecursionError``), or holding an integer longer than Python converts
(``ValueError``, 4,300 digits). What the parsed value must contain is each caller's check.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Optional, Union

from nnunetv2_openvocab.user_errors import UserError

PairsHook = Optional[Callable[[list], Any]]


class JsonInputError(UserError, ValueError):
    """A JSON input that cannot be read or parsed; the message names the file and the fix."""


def parse_json(text: str, source: str, fix: str = "", object_pairs_hook: PairsHook = None) -> Any:
    """``json.loads(text)``; any failure becomes JsonInputError naming ``source`` and ``fix``."""
    try:
        return json.loads(text, object_pairs_hook=object_pairs_hook)
    except RecursionError:
        problem = "brackets are nested too deeply to read"
    except json.JSONDecodeError as error:
        problem = f"not valid JSON ({error})"
    except ValueError as error:  # an integer beyond sys.get_int_max_str_digits()
        problem = f"holds a number too long to read ({str(error).split(';')[0]})"
    raise JsonInputError(f"{source}: {problem}. {fix}".strip())


def read_json_file(path: Union[str, os.PathLike], fix: str = "", object_pairs_hook: PairsHook = None,
                   what: str = "") -> Any:
    """The parsed content of ``path`` (``what`` names it in messages, e.g. '--prompts-file')."""
    path = Path(path)
    name = f"{what} {path}".strip()
    if path.is_dir():
        raise JsonInputError(f"{name} is a folder; pass a JSON file. {fix}".strip())
    if not path.is_file():
        raise JsonInputError(f"{name} does not exist. {fix}".strip())
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise JsonInputError(f"{name} is not UTF-8 text ({error.reason} at byte {error.start}). {fix}".strip()) \
            from None
    except OSError as error:
        raise JsonInputError(f"Cannot read {name}: {error.strerror or error}. {fix}".strip()) from None
    return parse_json(text, name, fix, object_pairs_hook)
