"""``nnUNetv2_openvocab_estimate_memory``: peak device memory of one training step of a trainer configuration.

Takes nnUNetv2_train's dataset, configuration, -tr and -p; reads the preprocessed plans and dataset.json and
prints the estimate (seconds on a CPU, nothing allocated at the configuration's size).
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from nnunetv2_openvocab.memory_estimate.trainer_configuration import estimate_trainer_configuration
from nnunetv2_openvocab.user_errors import exit_on_user_error

EPILOG = """worked example:
  nnUNetv2_openvocab_estimate_memory 291 3d_fullres -tr nnUNetTrainerOpenVocabFrozenEncoderCanonicalPrompts \\
      -p nnUNetPlans_OpenVocabCT
"""
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
