"""Atomic output files: written under a hidden temporary name in the target folder, then renamed.

A crash or Ctrl-C leaves either the complete file or nothing under the final name (the temporary file is
removed on any exception, KeyboardInterrupt included). Temporary names start with a dot and end with the
final name's extensions, so format detection by extension works and folder listings (evaluation, ``-i``)
skip them.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from nnunetv2.imageio.base_reader_writer import BaseReaderWriter

from dataset_conversion.file_utils import atomic_path as shared_atomic_path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """The shared atomic rename (dataset_conversion.file_utils), with the final name's extensions kept on the
    temporary file so that writers choosing their format by extension (SimpleITK, matplotlib) still do."""
    with shared_atomic_path(path, suffix="".join(Path(path).suffixes)) as temporary:
        yield temporary


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
