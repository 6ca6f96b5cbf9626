"""Atomic file writes: write a temporary file in the destination folder, then ``os.replace`` it into place.

A reader (or a resumed run) therefore sees either the old file or the complete new one, never half a file.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, os.PathLike]


@contextmanager
def atomic_path(destination: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``destination``; it replaces ``destination`` only if the block succeeds.

    ``suffix`` lets writers that choose their format from the file name (SimpleITK: ``.nii.gz``) see the right one.
    The temporary name starts with '.' so nnU-Net's case discovery never picks it up.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=f".tmp{suffix}", dir=destination.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, destination)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(destination: PathLike, text: str) -> None:
    with atomic_path(destination) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(destination: PathLike, obj) -> None:
    write_text_atomic(destination, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def copy_file_atomic(source: PathLike, destination: PathLike) -> None:
    with atomic_path(destination) as tmp:
        shutil.copyfile(source, tmp)


def link_or_copy_atomic(source: PathLike, destination: PathLike) -> None:
    """Hard-link when source and destination share a file system (no extra disk for merged datasets), else copy."""
    with atomic_path(destination) as tmp:
        os.remove(tmp)
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
