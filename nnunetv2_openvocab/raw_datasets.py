"""Where a raw nnU-Net dataset lives: a dataset id, name or folder -> its folder (read through nnunetv2.paths)."""
from __future__ import annotations

from pathlib import Path


def raw_dataset_folder(dataset: str) -> Path:
    """A dataset id (``4``), name (``Dataset004_Hippocampus``) or folder -> the raw dataset folder."""
    if Path(dataset).is_dir():
        return Path(dataset)
    from nnunetv2.paths import nnUNet_raw
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    if nnUNet_raw is None:
        raise SystemExit(f"{dataset!r} is not a folder and nnUNet_raw is not set: export nnUNet_raw=/path/to/nnUNet_raw "
                         f"or pass the dataset folder.")
    try:
        return Path(nnUNet_raw) / maybe_convert_to_dataset_name(int(dataset) if dataset.isdigit() else dataset)
    except RuntimeError:  # nnU-Net's message prints the environment over several lines
        raise ValueError(f"No dataset {dataset!r} in nnUNet_raw ({nnUNet_raw}). Pass an existing dataset id, name "
                         f"or folder.") from None
