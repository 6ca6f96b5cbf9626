"""Atomic output files: written under a hidden temporary name in the target folder, then renamed.

A crash or Ctrl-C leaves either the complete file or nothing under the final name (the temporary file is
removed on any exception, KeyboardInterrupt included). Temporary names start with a dot and end with the
final name, so format detection by extension works and folder listings (evaluation, ``-i``) skip them.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from nnunetv2.imageio.base_reader_writer import BaseReaderWriter


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds, else delete it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_segmentation(reader_writer: BaseReaderWriter, array: np.ndarray, path: Path, properties: dict) -> None:
    """A mask or label map in the input's geometry (``properties`` from the reader), written atomically."""
    with atomic_path(path) as temporary:
        reader_writer.write_seg(array, str(temporary), properties)


def write_json(payload: object, path: Path) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def write_text(text: str, path: Path) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
