"""Atomic output files: written under a hidden temporary name in the destination folder, checked, then renamed.

A reader, a resumed run, or a crash or Ctrl-C part-way sees the old file or the complete new one, never half
a file. Before the rename the temporary file is read back (``check_written``): a full disk or a file-size
limit makes C writers such as ITK's stop silently, so a file must prove it is whole (a NIfTI as long as its
header says, an npy of the expected shape, JSON that parses). A write that fails raises ``OutputWriteError``
naming the destination, and the temporary file is removed.

Temporary names are ``.<stem>.<8 random characters>.tmp<extension>`` (``TEMPORARY_NAME_OVERHEAD`` bytes more
than the destination's name): they start with '.', so nnU-Net's case discovery and our folder listings skip
them, and they end with the destination's extension, so writers that pick their format from the file name
(SimpleITK: ``.nii.gz``, matplotlib: ``.png``) still do. The writer holds a lock on its temporary file (POSIX
``flock``) until the rename; temporary files of the same destination that nobody holds were left by a killed
run and are removed before the next write.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator, Optional, Sequence, Union

import numpy as np

from nnunetv2_openvocab.user_errors import UserError

PathLike = Union[str, os.PathLike]
Check = Callable[[Path], None]

MAX_FILE_NAME_BYTES = 255  # ext4, xfs, btrfs, APFS, NTFS
_RANDOM_LENGTH = 8  # tempfile.mkstemp's random part
TEMPORARY_NAME_OVERHEAD = len(".") + len(".") + _RANDOM_LENGTH + len(".tmp")
COMPOUND_EXTENSIONS = (".nii.gz",)
# errors of the storage, not of the program: reported in one line naming the file
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EIO}
_CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class OutputWriteError(UserError):
    """An output could not be written completely (full disk, file-size limit, read-only or failing storage)."""


def extension(name: str) -> str:
    """'.nii.gz' for 'case_liver.nii.gz', '.png' for 'case.png', '' for 'README'."""
    for compound in COMPOUND_EXTENSIONS:
        if name.endswith(compound) and len(name) > len(compound):
            return compound
    return Path(name).suffix


def _temporary_pattern(destination: Path) -> re.Pattern:
    ending = extension(destination.name)
    stem = destination.name[: len(destination.name) - len(ending)]
    # '.<name>.' prefixes: the temporary names of earlier versions, e.g. '.manifest.jsonl.ab12cd34.tmp.jsonl'
    prefixes = "|".join(map(re.escape, (stem, destination.name)))
    return re.compile(rf"\.(?:{prefixes})\.[a-z0-9_]{{{_RANDOM_LENGTH}}}\.tmp{re.escape(ending)}")


def remove_stale_temporaries(destination: Path) -> None:
    """Delete temporary files of ``destination`` that no live writer holds (left by a killed run)."""
    pattern = _temporary_pattern(destination)
    for candidate in destination.parent.glob(f".*.tmp{extension(destination.name)}"):
        if not pattern.fullmatch(candidate.name):
            continue
        try:
            fd = os.open(candidate, os.O_RDONLY)
        except FileNotFoundError:  # its writer just renamed or removed it
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a running writer holds it
            continue
        else:
            candidate.unlink(missing_ok=True)
        finally:
            os.close(fd)


def _locked_temporary(destination: Path) -> tuple[int, Path]:
    ending = extension(destination.name)
    while True:
        fd, temporary = tempfile.mkstemp(prefix=f".{destination.name[: len(destination.name) - len(ending)]}.",
                                         suffix=".tmp" + ending, dir=destination.parent)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:  # not removed as stale by another run between creation and lock
            return fd, Path(temporary)
        os.close(fd)


def _storage_error(destination: Path, error: OSError) -> OutputWriteError:
    return OutputWriteError(f"Could not write {destination}: {error.strerror or error} (full disk, quota or "
                            f"file-size limit?). Free space or raise the limit, then run again.")


@contextmanager
def atomic_path(destination: PathLike, check: Optional[Check] = None) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; it is checked (``check``, default ``check_written``) and
    replaces ``destination`` only if the block succeeds."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(destination)
    try:
        fd, temporary = _locked_temporary(destination)
    except OSError as error:
        raise (_storage_error(destination, error) if error.errno in _STORAGE_ERRNOS else error) from None
    try:
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; outputs (and shared caches) are meant to be read by others
        yield temporary
        try:
            (check or check_written)(temporary)
        except ValueError as error:  # the file on disk is not what was written
            raise OutputWriteError(f"Could not write {destination}: the written file is incomplete ({error}); the "
                                   f"disk may be full or a file-size limit reached. Free space or raise the limit, "
                                   f"then run again.") from None
        os.replace(temporary, destination)
    except OSError as error:
        if error.errno in _STORAGE_ERRNOS or error.errno is None:  # None: a library's short write (numpy's tofile)
            raise _storage_error(destination, error) from None
        raise
    finally:
        temporary.unlink(missing_ok=True)
        os.close(fd)


@contextmanager
def atomic_write(destination: PathLike, binary: bool = False) -> Iterator[IO]:
    """An open file (UTF-8 text, or bytes) that becomes ``destination``, synced to disk, when the block succeeds."""
    with atomic_path(destination) as temporary:
        text_options = {} if binary else {"encoding": "utf-8", "newline": ""}
        with open(temporary, "wb" if binary else "w", **text_options) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


def escape_control_characters(text: str) -> str:
    """Control characters other than tab and line ends (e.g. ESC from a prompt, which would recolour or clear a
    terminal showing the file) written as visible ``\\x1b``-style escapes."""
    return _CONTROL_CHARACTERS.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def write_text_atomic(destination: PathLike, text: str) -> None:
    """Every text output goes through here, so none carries raw control characters (JSON escapes its own)."""
    with atomic_write(destination) as handle:
        handle.write(escape_control_characters(text))


def write_json_atomic(destination: PathLike, obj) -> None:
    write_text_atomic(destination, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def save_npy_atomic(destination: PathLike, array: np.ndarray) -> None:
    """``np.save`` to ``destination``; the file is read back and must hold ``array``'s shape and dtype."""
    with atomic_path(destination, check=lambda path: check_npy(path, array.shape, array.dtype)) as temporary:
        with open(temporary, "wb") as handle:
            np.save(handle, array)


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


# ---- checks: raise ValueError when a file is not whole ------------------------------------------------------------
def check_nifti(path: Path) -> None:
    """The header reads and the data are as long as it says (for .nii.gz: the gzip trailer's length)."""
    import nibabel

    try:
        image = nibabel.load(path)
    except Exception as error:  # nibabel raises several types for a broken or empty file
        raise ValueError(f"unreadable NIfTI header: {error}") from None
    # the header object nibabel hands out has vox_offset reset; the data proxy keeps the file's offset
    expected = int(image.dataobj.offset) + int(np.prod(image.shape)) * image.get_data_dtype().itemsize
    if path.name.endswith(".gz"):
        with open(path, "rb") as handle:
            handle.seek(-4, os.SEEK_END)
            stored = int.from_bytes(handle.read(4), "little")  # gzip ISIZE: uncompressed length mod 2**32
        if stored != expected % 2 ** 32:
            raise ValueError(f"compressed data end early (header needs {expected} bytes)")
    elif path.stat().st_size < expected:
        raise ValueError(f"{path.stat().st_size} bytes, header needs {expected}")


def check_npy(path: Path, shape: Optional[Sequence[int]] = None, dtype=None) -> None:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"unreadable npy: {error}") from None
    if (shape is not None and array.shape != tuple(shape)) or (dtype is not None and array.dtype != dtype):
        raise ValueError(f"npy holds {array.dtype} {array.shape}, expected {dtype} {tuple(shape or ())}")


def check_json(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines() if path.name.endswith(".jsonl") else [text]
    for number, line in enumerate(lines, start=1):
        if line.strip() or not path.name.endswith(".jsonl"):
            try:
                json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"invalid JSON at line {number}: {error}") from None


def check_png(path: Path) -> None:
    with open(path, "rb") as handle:
        signature = handle.read(8)
        handle.seek(max(path.stat().st_size - 12, 0))
        end = handle.read(12)
    if signature != b"\x89PNG\r\n\x1a\n" or end[4:8] != b"IEND":
        raise ValueError("PNG without signature or end chunk")


def check_zip(path: Path) -> None:
    """torch.save's format: the central directory is written last, so a truncated file has none."""
    try:
        zipfile.ZipFile(path).close()
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"truncated archive: {error}") from None


def check_safetensors(path: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np"):
            pass
    except Exception as error:  # safetensors raises its own error type for short or corrupt files
        raise ValueError(f"unreadable safetensors: {error}") from None


CHECKS_BY_EXTENSION = {".nii.gz": check_nifti, ".nii": check_nifti, ".npy": check_npy, ".json": check_json,
                       ".jsonl": check_json, ".png": check_png, ".pt": check_zip, ".pth": check_zip,
                       ".safetensors": check_safetensors}


def check_written(path: Path) -> None:
    """Raise ValueError if ``path`` is not a whole file of the format its extension names; formats without a
    check (CSV, text) are written by Python, whose writes raise on a full disk instead of stopping silently."""
    check = CHECKS_BY_EXTENSION.get(extension(path.name))
    if check is not None:
        check(path)


def is_complete_file(path: Path) -> bool:
    """Whether ``path`` exists and passes ``check_written`` (a resumed run redoes files that do not)."""
    if not path.is_file():
        return False
    try:
        check_written(path)
    except (ValueError, OSError):
        return False
    return True
