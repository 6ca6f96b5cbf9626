"""Check an output folder before any work: a folder (not a file, not a dangling link), writable, outside the input
folder and the inputs (a later run over that input would read our masks as images), and without symlinked
sub-folders (the files we write there would land outside it). Used by predict, evaluate, compare and demo."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from nnunetv2_openvocab.user_errors import UserError


class OutputFolderError(UserError):
    """An output folder that is a file, cannot be created or written, or lies inside the input folder."""


def check_output_folder(folder: str | os.PathLike, flag: str = "-o",
                        input_folder: Optional[str | os.PathLike] = None) -> Path:
    """Return ``folder`` if it is, or can be created as, a writable folder outside ``input_folder``; raise
    OutputFolderError naming ``flag``, the folder and the fix otherwise. Creates nothing (writers do)."""
    folder = Path(folder)
    if folder.is_symlink() and not folder.exists():
        raise OutputFolderError(f"{flag} {folder} is a symbolic link to {os.readlink(folder)}, which does not exist. "
                                f"Create the link's target, or pass another folder.")
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"{flag} {folder} is a file, not a folder. Pass the path of a folder (it is created).")
    if input_folder is not None and Path(input_folder).is_dir():
        inputs, outputs = Path(input_folder).resolve(), folder.resolve()
        if outputs == inputs or inputs in outputs.parents:
            raise OutputFolderError(f"{flag} {folder} is inside the input folder {input_folder}: a later run over that "
                                    f"folder would read the outputs as images. Write the outputs to another folder.")
    existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise OutputFolderError(f"Cannot create {flag} {folder}: {existing} is a file. Pass a folder path.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputFolderError(f"{flag} {folder} is not writable ({existing} does not allow it). Pass a folder you "
                                f"can write to, or fix its permissions.")
    _refuse_linked_sub_folders(folder, flag)
    return folder


def _refuse_linked_sub_folders(folder: Path, flag: str) -> None:
    """A sub-folder we write into (combined/, previews/, ...) that is a symbolic link would take our files
    elsewhere; a dangling link would make creating it fail half-way. Both are refused."""
    if not folder.is_dir():
        return
    with os.scandir(folder) as entries:
        linked = sorted(entry.name for entry in entries if entry.is_symlink() and not entry.is_file())
    if linked:
        raise OutputFolderError(f"{flag} {folder} holds symbolic link(s) {linked[:5]} where sub-folders are written: "
                                f"outputs would land outside {flag}. Remove the link(s) or pass another folder.")


def check_inputs_outside(folder: str | os.PathLike, inputs, flag: str = "-o") -> None:
    """Refuse any input path (a job's image or DICOM folder) that lies inside the output ``folder``."""
    outputs = Path(folder).resolve()
    for path in inputs:
        resolved = Path(path).resolve()
        if resolved == outputs or outputs in resolved.parents:
            raise OutputFolderError(f"Input {path} lies inside {flag} {folder}: outputs would be written next to "
                                    f"the inputs and read as images by a later run. Write the outputs to another "
                                    f"folder.")
