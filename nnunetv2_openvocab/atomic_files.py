"""Atomic output files: written under a hidden temporary name in the destination folder, then renamed over it.

A reader, a resumed run, or a crash or Ctrl-C part-way sees the old file or the complete new one, never half
a file (the temporary file is removed on any exception). Temporary names start with '.', so nnU-Net's case
discovery and our folder listings skip them, and end with the destination's extensions, so writers that pick
their format from the file name (SimpleITK: ``.nii.gz``, matplotlib: ``.png``) still do.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Union

PathLike = Union[str, os.PathLike]


@contextmanager
def atomic_path(destination: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; it replaces ``destination`` only if the block succeeds."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp" + "".join(destination.suffixes),
                                     dir=destination.parent)
    os.close(fd)
    os.chmod(temporary, 0o644)  # mkstemp creates 0600; outputs are meant to be shared
    try:
        yield Path(temporary)
        os.replace(temporary, destination)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


@contextmanager
def atomic_write(destination: PathLike, binary: bool = False) -> Iterator[IO]:
    """An open file (UTF-8 text, or bytes) that becomes ``destination``, synced to disk, when the block succeeds."""
    with atomic_path(destination) as temporary:
        text_options = {} if binary else {"encoding": "utf-8", "newline": ""}
        with open(temporary, "wb" if binary else "w", **text_options) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


def write_text_atomic(destination: PathLike, text: str) -> None:
    with atomic_write(destination) as handle:
        handle.write(text)


def write_json_atomic(destination: PathLike, obj) -> None:
    write_text_atomic(destination, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def copy_file_atomic(source: PathLike, destination: PathLike) -> None:
    with atomic_path(destination) as temporary:
        shutil.copyfile(source, temporary)


def link_or_copy_atomic(source: PathLike, destination: PathLike) -> None:
    """Hard-link when source and destination share a file system (no extra disk for merged datasets), else copy."""
    with atomic_path(destination) as temporary:
        os.remove(temporary)
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
