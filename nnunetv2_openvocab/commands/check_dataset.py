"""``nnUNetv2_openvocab_check_dataset -d ID``: report every problem of a raw dataset for open-vocabulary training."""
from __future__ import annotations

import argparse
import sys

from nnunetv2_openvocab.prompts.validation import validate_dataset
from nnunetv2_openvocab.raw_datasets import raw_dataset_folder
from nnunetv2_openvocab.user_errors import exit_on_user_error


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
