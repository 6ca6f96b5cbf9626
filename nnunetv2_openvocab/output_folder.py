"""Check an output folder before any work: a folder (not a file), writable, and outside the input folder (a later
run over that input would read our masks as images). Used by predict and evaluate."""
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
    return folder
