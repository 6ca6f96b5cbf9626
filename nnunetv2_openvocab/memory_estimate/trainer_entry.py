"""``nnUNetv2_openvocab_estimate_memory``: peak device memory of one training step of a trainer configuration.

Takes nnUNetv2_train's dataset, configuration, -tr and -p; reads the preprocessed plans and dataset.json and
prints the estimate (seconds on a CPU, nothing allocated at the configuration's size).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

from nnunetv2_openvocab.user_errors import exit_on_user_error

EPILOG = """worked example:
  nnUNetv2_openvocab_estimate_memory 291 3d_fullres -tr nnUNetTrainerOpenVocabFrozenEncoderCanonicalPrompts \\
      -p nnUNetPlans_OpenVocabCT
"""
STOCK_TRAINER = "nnUNetTrainer"


def estimate_trainer_configuration(dataset: str, configuration: str, trainer: str, plans_identifier: str,
                                   mixed_precision: bool = True):
    """The MemoryEstimate (estimates.py) of `nnUNetv2_train dataset configuration FOLD -tr trainer -p plans_identifier`."""
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    import nnunetv2_openvocab.training as registry
    from nnunetv2_openvocab.memory_estimate.estimates import estimate_training
    from nnunetv2_openvocab.model_spec import OpenVocabSpec
    from nnunetv2_openvocab.training.variants import nnUNetTrainerOpenVocabFrozenEncoder

    if trainer != STOCK_TRAINER and trainer not in registry.__all__:
        raise ValueError(f"-tr {trainer}: not one of nnUNetTrainer or {', '.join(registry.__all__)}.")
    folder = Path(nnUNet_preprocessed or "") / maybe_convert_to_dataset_name(dataset)
    plans_file = folder / f"{plans_identifier}.json"
    if not plans_file.is_file():
        raise FileNotFoundError(f"{plans_file} does not exist; plan the dataset first or fix -p / nnUNet_preprocessed.")
    dataset_json = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    num_labels = len(dataset_json["labels"]) - 1  # without background
    if trainer == STOCK_TRAINER:
        return estimate_training(plans_file, configuration, num_labels, None, mixed_precision=mixed_precision)
    trainer_class = getattr(registry, trainer)
    spec = OpenVocabSpec.from_plans(json.loads(plans_file.read_text(encoding="utf-8")), str(plans_file))
    return estimate_training(plans_file, configuration, len(spec.label_names), spec,
                             issubclass(trainer_class, nnUNetTrainerOpenVocabFrozenEncoder), trainer_class.connector,
                             mixed_precision)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="nnUNetv2_openvocab_estimate_memory", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset_name_or_id")
    parser.add_argument("configuration")
    parser.add_argument("-tr", default="nnUNetTrainerOpenVocab", help="trainer class (default %(default)s)")
    parser.add_argument("-p", default="nnUNetPlans", help="plans identifier (default %(default)s)")
    parser.add_argument("--no-mixed-precision", action="store_true",
                        help="estimate float32 training (nnU-Net autocasts on CUDA only)")
    args = parser.parse_args(argv)
    with exit_on_user_error(parser.prog):
        print(estimate_trainer_configuration(args.dataset_name_or_id, args.configuration, args.tr, args.p,
                                             not args.no_mixed_precision))


if __name__ == "__main__":
    main()
