"""``nnUNetv2_openvocab_demo``: the whole pipeline on the bundled real CT, on CPU (steps: nnunetv2_openvocab/demo.py)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

import torch

from nnunetv2_openvocab.demo import DemoError, run_demo
from nnunetv2_openvocab.output_folder import check_output_folder
from nnunetv2_openvocab.user_errors import exit_on_user_error

EPILOG = """\
example:
  nnUNetv2_openvocab_demo --output openvocab_demo
  nnUNetv2_openvocab_demo --output openvocab_demo --minutes 20   # stop training after 20 minutes at the latest
  # then open openvocab_demo/predictions/previews/example_000.png and openvocab_demo/metrics/summary.md
"""


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="nnUNetv2_openvocab_demo", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Build a dataset from the bundled real CT, train a small "
                                                 "open-vocabulary model on CPU, predict seen and unseen prompts, "
                                                 "and evaluate them.")
    parser.add_argument("--output", default="openvocab_demo", help="demo folder (default %(default)s)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="optional cap on training time; by default training runs its fixed 750 iterations, "
                             "so that the result does not depend on machine load")
    parser.add_argument("--model-folder", default=None,
                        help="reuse a model trained on the example dataset instead of training one")
    args = parser.parse_args(argv)
    try:
        with exit_on_user_error(parser.prog):
            run_demo(check_output_folder(args.output, "--output"), args.minutes, torch.device("cpu"),
                     Path(args.model_folder) if args.model_folder else None)
    except DemoError as error:
        sys.exit(f"nnUNetv2_openvocab_demo: error: {error}")
