"""Command-line flags shared by ``nnUNetv2_openvocab_predict``, ``_eval_unseen`` and ``_eval_transfer`` (nnU-Net's
names), and the model folder they name."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

import torch

from nnunetv2_openvocab.constants import DEFAULT_STEP_SIZE
from nnunetv2_openvocab.inference.model_loading import DEFAULT_CHECKPOINT, Fold, ModelFolderError
from nnunetv2_openvocab.prompts.grounding import GROUNDING_MODES, MATCH_THRESHOLD


def parse_folds(values: Optional[List[str]]) -> Optional[List[Fold]]:
    return None if values is None else [v if v == "all" else int(v) for v in values]


def add_prediction_arguments(parser: argparse.ArgumentParser) -> None:
    """The sliding-window flags shared with nnUNetv2_openvocab_eval_unseen (nnU-Net's names)."""
    parser.add_argument("-f", nargs="+", default=None, help="folds to ensemble, e.g. 0 1 2 3 4 or all "
                                                            "(default: every trained fold)")
    parser.add_argument("-chk", default=DEFAULT_CHECKPOINT, help="checkpoint file name (default %(default)s)")
    parser.add_argument("-step_size", type=float, default=DEFAULT_STEP_SIZE,
                        help="sliding-window step, fraction of the patch (default %(default)s)")
    parser.add_argument("--disable_tta", action="store_true", help="no mirroring (8x faster on 3 axes)")
    parser.add_argument("-device", default="cuda" if torch.cuda.is_available() else "cpu",
                        choices=["cuda", "cpu", "mps"], help="device (default %(default)s)")
    parser.add_argument("--disable_progress_bar", action="store_true")


def add_grounding_arguments(parser: argparse.ArgumentParser, with_mode: bool = True) -> None:
    """--grounding and its threshold; nnUNetv2_openvocab_eval_unseen takes the threshold only (it scores two routes)."""
    if with_mode:
        parser.add_argument("--grounding", choices=GROUNDING_MODES, default="auto",
                            help="auto: a prompt the taxonomy resolves is answered with its training labels (a union "
                                 "of their masks for merged structures), others with their text; text: always the "
                                 "text query; taxonomy: refuse prompts that do not resolve (default %(default)s)")
    parser.add_argument("--grounding-threshold", type=float, default=MATCH_THRESHOLD,
                        help="cosine above which the nearest taxonomy entry grounds a prompt (default %(default)s, "
                             "calibrated for MiniLM)")


def model_folder_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Path:
    if (args.m is None) == (args.d is None):
        parser.error("give the model either as -m MODEL_FOLDER or as -d DATASET (with -tr, -p, -c)")
    if args.m is not None:
        return Path(args.m)
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    try:
        return Path(get_output_folder(args.d, args.tr, args.p, args.c))
    except (RuntimeError, TypeError) as error:
        raise ModelFolderError(f"Cannot find the results of dataset {args.d} ({error}). Set nnUNet_results and "
                               f"nnUNet_raw/nnUNet_preprocessed, or pass -m MODEL_FOLDER.") from None
