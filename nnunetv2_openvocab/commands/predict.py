"""``nnUNetv2_openvocab_predict``: nnU-Net's predict flags plus free-text prompts (the plain function behind it is
``inference.run_prediction.run_prediction``)."""
from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence

import torch

from nnunetv2_openvocab.commands.prediction_arguments import (add_grounding_arguments, add_prediction_arguments,
                                                              model_folder_from_args, parse_folds)
from nnunetv2_openvocab.inference.background_workers import Workers
from nnunetv2_openvocab.inference.case_parts import CasePart
from nnunetv2_openvocab.inference.outputs.case_outputs import NIFTI, OUTPUT_TYPES, OutputOptions
from nnunetv2_openvocab.inference.outputs.prompt_report import FAR_THRESHOLD
from nnunetv2_openvocab.inference.patient_side import side_check_summary
from nnunetv2_openvocab.inference.presence import presence_summary
from nnunetv2_openvocab.inference.run_prediction import run_prediction
from nnunetv2_openvocab.user_errors import exit_on_user_error

# nnU-Net defaults to 3 background processes each; on a 2-core CPU they cut throughput to 0.3x of sequential
# (benchmarks/bench_scale_out.py, RESULTS.md), so they are opt-in: use them where cores idle during inference
DEFAULT_WORKERS = 0

EPILOG = """\
examples:
  # the model's own training prompts, on a folder of CTs (nnU-Net naming: case_0000.nii.gz)
  nnUNetv2_openvocab_predict -i imagesTs -o pred -d 990 -tr nnUNetTrainerOpenVocab -p nnUNetPlans_STUNetB -f all
  # any text, a DICOM series folder, label map + statistics + previews
  nnUNetv2_openvocab_predict -i dicom/patient_7 -o pred -m MODEL_FOLDER -f all \\
      --prompts liver "renal organs" "left kidney" --combined --statistics --preview
  # different prompts per image
  nnUNetv2_openvocab_predict --prompts-file jobs.json -o pred -m MODEL_FOLDER
  # a DICOM Segmentation object per DICOM series, plus float16 probability maps
  nnUNetv2_openvocab_predict -i dicom/ -o pred -m MODEL_FOLDER --output-type dicom_seg --save_probabilities
  # an RT Structure Set per DICOM series, for radiotherapy planning systems
  nnUNetv2_openvocab_predict -i dicom/ -o pred -m MODEL_FOLDER --output-type dicom_rtstruct --prompts liver
  # half of the cases on each of two machines (same command, -part_id 0 and 1)
  nnUNetv2_openvocab_predict -i imagesTs -o pred -m MODEL_FOLDER -num_parts 2 -part_id 1
  # no text encoder on this machine: a bank exported elsewhere with nnUNetv2_openvocab_embed
  nnUNetv2_openvocab_predict -i ct.nii.gz -o pred -m MODEL_FOLDER --prompts "renal organs" --embeddings bank.npz

jobs.json: {"jobs": [{"image": "ct_001.nii.gz", "prompts": ["liver", "renal organs"]},
                     {"image": "dicom/patient_7", "case": "patient_7", "prompts": ["spleen"]}]}
  (paths relative to the jobs file; "prompts" defaults to --prompts, else the training prompts)

outputs: see the README's "Output folder layout" (one mask per prompt, prompt_report.{json,md},
  prediction_settings.json, and the files of --combined, --statistics, --preview, --save_probabilities, --output-type).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnUNetv2_openvocab_predict", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Segment CT images from free-text prompts with a trained "
                                                 "nnunetv2-openvocab model; masks keep the input's geometry.")
    parser.add_argument("-i", help="image file, folder of images (case_0000.nii.gz) or DICOM series folder(s)")
    parser.add_argument("-o", required=True, help="output folder (created)")
    parser.add_argument("-m", help="model folder written by nnUNetv2_train (alternative to -d/-tr/-p/-c)")
    parser.add_argument("-d", help="dataset name or id (model under $nnUNet_results)")
    parser.add_argument("-tr", default="nnUNetTrainerOpenVocab", help="trainer (default %(default)s)")
    parser.add_argument("-p", default="nnUNetPlans_STUNetB", help="plans identifier (default %(default)s)")
    parser.add_argument("-c", default="3d_fullres", help="configuration (default %(default)s)")
    add_prediction_arguments(parser)
    parser.add_argument("--prompts", nargs="+", default=None, help="free-text prompts (default: training prompts)")
    parser.add_argument("--prompts-file", default=None, help="JSON file with per-image prompts (see below)")
    parser.add_argument("--combined", action="store_true", help="also write a label map with a JSON legend")
    parser.add_argument("--statistics", action="store_true", help="volume (ml) and mean HU per prompt, as JSON")
    parser.add_argument("--preview", action="store_true", help="PNG overlays of axial and coronal slices")
    parser.add_argument("--save_probabilities", action="store_true",
                        help="also write each prompt's float16 probability map (probabilities/, .npz as nnU-Net)")
    parser.add_argument("--output-type", choices=OUTPUT_TYPES, default=NIFTI,
                        help="nifti: one mask file per prompt (default); dicom_seg: one DICOM Segmentation object "
                             "per case; dicom_rtstruct: one RT Structure Set per case (both for DICOM series inputs)")
    parser.add_argument("-num_parts", type=int, default=1,
                        help="split the cases into this many parts, e.g. one per GPU or machine (nnU-Net's flag)")
    parser.add_argument("-part_id", type=int, default=0,
                        help="which part this run predicts, 0 .. num_parts-1 (nnU-Net's flag)")
    parser.add_argument("-npp", type=int, default=DEFAULT_WORKERS,
                        help="background processes for reading and preprocessing (0: none; default %(default)s)")
    parser.add_argument("-nps", type=int, default=DEFAULT_WORKERS,
                        help="background processes for writing the outputs (0: none; default %(default)s)")
    parser.add_argument("--far-threshold", type=float, default=FAR_THRESHOLD,
                        help="cosine below which the prompt report flags a prompt as far from training "
                             "(default %(default)s, calibrated for MiniLM)")
    add_grounding_arguments(parser)
    parser.add_argument("--embeddings", default=None, metavar="BANK_NPZ",
                        help="prompt embedding bank from nnUNetv2_openvocab_embed: no text encoder is loaded")
    parser.add_argument("--continue_prediction", "--c", action="store_true",
                        help="skip cases whose outputs all exist")
    parser.add_argument("--no-side-check", dest="side_check", action="store_false",
                        help="do not check that sided answers lie on their side of the patient: the network's raw "
                             "masks, equal to nnU-Net's predictor's (for baseline comparisons; default: checked)")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--estimate-memory", action="store_true",
                        help="print the peak device memory of one sliding-window tile for these prompts and exit")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if args.estimate_memory:
        from nnunetv2_openvocab.memory_estimate.estimates import estimate_prediction

        with exit_on_user_error(parser.prog, traceback=args.verbose):
            print(estimate_prediction(model_folder_from_args(args, parser), parse_folds(args.f), args.chk,
                                      args.prompts, not args.disable_tta))
        return
    if (args.i is None) == (args.prompts_file is None):
        parser.error("give the images either with -i or with --prompts-file")
    with exit_on_user_error(parser.prog, traceback=args.verbose):
        run = run_prediction(model_folder_from_args(args, parser), args.o, args.i, args.prompts, args.prompts_file,
                             parse_folds(args.f), args.chk, args.step_size, not args.disable_tta,
                             torch.device(args.device),
                             OutputOptions(args.combined, args.statistics, args.preview, args.save_probabilities,
                                           args.output_type),
                             args.continue_prediction, args.far_threshold, not args.disable_progress_bar,
                             grounding=args.grounding, grounding_threshold=args.grounding_threshold,
                             embedding_bank=args.embeddings, part=CasePart(args.num_parts, args.part_id),
                             workers=Workers(args.npp, args.nps), side_check=args.side_check)
    print(run.report.to_text())
    print(presence_summary(run.report.presence))
    side_checks = side_check_summary(run.report.side_checks)
    if side_checks:
        print(side_checks)
    print(f"\n{sum(map(len, run.written.values()))} files for {len(run.written)} case(s) in {run.output_folder}"
          + (f"; skipped {len(run.skipped)} finished case(s)" if run.skipped else ""))
    print(f"Prompt report: {run.report_files[0]} and {run.report_files[1]}")
