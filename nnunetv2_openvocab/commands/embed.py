"""``nnUNetv2_openvocab_embed``: export a prompt embedding bank (text/embedding_bank.py) for a model, so that
prediction with ``--embeddings`` runs where no text-model files are present.

The bank holds the requested prompts plus everything a prediction of them may embed besides: the model's
training prompts (prompt report) and the taxonomy's prompts (grounding's nearest-entry match).
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from nnunetv2_openvocab.commands.prediction_arguments import parse_folds
from nnunetv2_openvocab.inference.embedding_export import export_bank, read_prompts_file
from nnunetv2_openvocab.inference.model_loading import DEFAULT_CHECKPOINT
from nnunetv2_openvocab.inference.prompt_jobs import validate_prompts
from nnunetv2_openvocab.user_errors import exit_on_user_error

EPILOG = """\
examples:
  nnUNetv2_openvocab_embed -m MODEL_FOLDER --prompts liver "renal organs" "left kidney" -o bank.npz
  nnUNetv2_openvocab_embed -m MODEL_FOLDER --prompts-file prompts.txt -o bank.npz
  # then, on a machine without the text encoder:
  nnUNetv2_openvocab_predict -i ct.nii.gz -o pred -m MODEL_FOLDER --prompts "renal organs" --embeddings bank.npz

prompts file: one prompt per line (blank lines and lines starting with # are skipped), or the JSON jobs file of
  nnUNetv2_openvocab_predict --prompts-file (its prompts are taken, its images not read).
"""


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="nnUNetv2_openvocab_embed", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Export prompt embeddings (fp16 .npz with the encoder's fingerprint) "
                                                 "so that nnUNetv2_openvocab_predict --embeddings needs no text "
                                                 "encoder.")
    parser.add_argument("-m", required=True, help="model folder written by nnUNetv2_train")
    parser.add_argument("-f", nargs="+", default=None, help="fold whose checkpoint to read (default: any trained)")
    parser.add_argument("-chk", default=DEFAULT_CHECKPOINT, help="checkpoint file name (default %(default)s)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompts", nargs="+", help="prompts to export")
    source.add_argument("--prompts-file", help="text file, one prompt per line (or a predict jobs .json)")
    parser.add_argument("-o", required=True, help="output bank, e.g. bank.npz")
    args = parser.parse_args(argv)
    with exit_on_user_error(parser.prog):
        prompts = validate_prompts(args.prompts if args.prompts is not None else read_prompts_file(args.prompts_file),
                                   "--prompts" if args.prompts is not None else args.prompts_file)
        path = export_bank(args.m, prompts, args.o, args.chk, parse_folds(args.f))
    print(f"Wrote {path}: {len(prompts)} requested prompt(s) plus the model's training prompts and the taxonomy's "
          f"prompts.")
