"""``nnUNetv2_openvocab_plan_and_preprocess``: nnU-Net's plan-and-preprocess flags plus STUNet size, text encoder
and pretrained checkpoint (planning/plan_and_preprocess.py does the work)."""
from __future__ import annotations

import argparse
from typing import List, Optional

from nnunetv2.configuration import default_num_processes

from nnunetv2_openvocab.paper_presets import PLAN_PRESETS, apply_preset, fill_defaults
from nnunetv2_openvocab.planning.plan_and_preprocess import plan_and_preprocess

from nnunetv2_openvocab.text.encoder import DEFAULT_TEXT_ENCODER
from nnunetv2_openvocab.user_errors import exit_on_user_error


PRESET_FLAGS = {"stunet": "--stunet", "isotropic": "--isotropic-1.5mm", "text_encoder": "--text-encoder"}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="nnUNetv2_openvocab_plan_and_preprocess",
        description="Fingerprint, plan (STUNet) and preprocess datasets for nnUNetTrainerOpenVocab / nnUNetTrainer.",
        epilog="Example: nnUNetv2_openvocab_plan_and_preprocess -d 501 -c 3d_fullres --preset paper\n"
               "(= --stunet L --isotropic-1.5mm --text-encoder FremyCompany/BioLORD-2023)\n"
               "then: nnUNetv2_train 501 3d_fullres 0 -tr nnUNetTrainerOpenVocab -p nnUNetPlans_STUNetL",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-d", nargs="+", required=True, help="dataset ids, names or raw folders")
    parser.add_argument("-c", nargs="+", default=["3d_fullres"], help="configurations to preprocess (default 3d_fullres)")
    parser.add_argument("--preset", choices=sorted(PLAN_PRESETS),
                        help="paper: STU-Net L, 1.5 mm isotropic, BioLORD-2023 (explicit flags override it; "
                             "what it set is printed)")
    parser.add_argument("--stunet", choices=["S", "B", "L", "H"], default=argparse.SUPPRESS,
                        help="STU-Net size (default B)")
    parser.add_argument("--width", type=int, default=None,
                        help="override the stage-0 width (others scale x2 up to x16), e.g. 8 for CPU tests")
    parser.add_argument("--patch-size", type=int, nargs=3, default=None, help="fixed patch size instead of nnU-Net's")
    parser.add_argument("--isotropic-1.5mm", dest="isotropic", action="store_true", default=argparse.SUPPRESS,
                        help="resample to the paper's 1.5 mm isotropic spacing")
    parser.add_argument("--text-encoder", default=argparse.SUPPRESS,
                        help=f"sentence encoder id or folder (default {DEFAULT_TEXT_ENCODER}; 'minilm' for the offline test model)")
    parser.add_argument("--pretrained", default=None,
                        help="aligned checkpoint (nnUNetv2_openvocab_pretrain export) or nnU-Net STUNet checkpoint")
    parser.add_argument("-np", type=int, default=default_num_processes, help="processes for fingerprint and preprocessing")
    parser.add_argument("--verify_dataset_integrity", action="store_true", help="run nnU-Net's integrity check too")
    parser.add_argument("--clean", action="store_true", help="recompute the fingerprint even if it exists")
    parser.add_argument("-gpu_memory_target", type=float, default=8, help="GPU memory target of nnU-Net's planner (GB)")
    parser.add_argument("-overwrite_plans_name", default=None, help="custom plans identifier")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--no_pbar", action="store_true")
    args = parser.parse_args(argv)
    if args.preset:
        for line in apply_preset(args, PLAN_PRESETS, args.preset, PRESET_FLAGS):
            print(line)
    fill_defaults(args, {"stunet": "B", "isotropic": False, "text_encoder": DEFAULT_TEXT_ENCODER})
    for dataset in args.d:
        with exit_on_user_error(parser.prog, traceback=args.verbose):
            identifier = plan_and_preprocess(dataset, args.c, args.stunet, args.width, args.text_encoder,
                                             args.pretrained, args.isotropic, args.patch_size, args.np,
                                             args.verify_dataset_integrity, args.clean, args.gpu_memory_target,
                                             args.overwrite_plans_name, args.verbose, not args.no_pbar)
        print(f"Plans written: {identifier}")


if __name__ == "__main__":
    main()
