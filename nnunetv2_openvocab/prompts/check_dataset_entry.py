"""``nnUNetv2_openvocab_check_dataset -d ID``: report every problem of a raw dataset for open-vocabulary training."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nnunetv2_openvocab.prompts.validation import validate_dataset
from nnunetv2_openvocab.user_errors import exit_on_user_error


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Validate dataset.json (nnU-Net structure, text_prompts, annotated_labels) and list all problems.",
        epilog="Example: nnUNetv2_openvocab_check_dataset -d 501   (or -d Dataset501_Abdomen, or -d /data/raw/Dataset501_Abdomen)")
    parser.add_argument("-d", required=True, help="dataset id, name or folder")
    args = parser.parse_args(argv)
    with exit_on_user_error("nnUNetv2_openvocab_check_dataset"):
        folder = raw_dataset_folder(args.d)
    problems = validate_dataset(folder)
    if not problems:
        print(f"{folder}: OK, ready for open-vocabulary training.")
        return 0
    print(f"{folder}: {len(problems)} problem(s):")
    for problem in problems:
        print(f"  - {problem}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
