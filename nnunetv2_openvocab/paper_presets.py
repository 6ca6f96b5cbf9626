"""``--preset paper``: the OpenVocabCT paper's settings (section IV-B) for planning and pretraining, in one table each.

A preset fills only the options the user did not give: an explicit flag always wins, and the command prints
what the preset set and what was overridden. Values the paper does not state (learning rates, epochs, initial
temperature, number of augmented views) are not part of a preset; README "Reproducing the paper" lists the
defaults chosen for them.
"""
from __future__ import annotations

import argparse
from typing import Any, Mapping

PAPER = "paper"

# option dest -> value; the keys are argparse dests of nnUNetv2_openvocab_plan_and_preprocess
PLAN_PRESETS: dict[str, dict[str, Any]] = {
    PAPER: {
        "stunet": "L",                                  # STU-Net large
        "isotropic": True,                              # 1.5 mm isotropic
        "text_encoder": "FremyCompany/BioLORD-2023",    # BioLORD-2023
    },
}

# keys are argparse dests of ``nnUNetv2_openvocab_pretrain train`` (PreprocessingConfig / TrainConfig fields)
PRETRAIN_PRESETS: dict[str, dict[str, Any]] = {
    PAPER: {
        "target_spacing": [1.5, 1.5, 1.5],   # 1.5 mm isotropic
        "patch_size": [220, 220, 220],       # padded to 220^3
        "num_captions": 3,                   # three sampled captions per image (K = 3)
        "report_section": "findings",        # the findings section as report text
        "batch_size": 32,                    # per GPU (process), four GPUs in the paper
        "num_augmented_views": 4,            # image augmentation on; the paper does not give the number of views
    },
}


def _shown(value: Any) -> str:
    """How the value is typed on the command line ('' for a switch)."""
    if value is True:
        return ""
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def apply_preset(args: argparse.Namespace, presets: Mapping[str, Mapping[str, Any]], name: str,
                 flag_names: Mapping[str, str]) -> list[str]:
    """Set the preset's values on `args` where the user gave no flag; returns one line per preset entry.

    Options a preset may set must use ``default=argparse.SUPPRESS`` so that "not given" is visible here.
    `flag_names` maps dests to the flags users type (for the printed lines).
    """
    lines = []
    for dest, value in presets[name].items():
        flag = flag_names.get(dest, dest)
        setting = f"{flag} {_shown(value)}".rstrip()
        if hasattr(args, dest):
            given = f"{flag} {_shown(getattr(args, dest))}".rstrip()
            lines.append(f"preset {name}: {setting} overridden by the given {given}")
        else:
            setattr(args, dest, value)
            lines.append(f"preset {name}: {setting}")
    return lines


def fill_defaults(args: argparse.Namespace, defaults: Mapping[str, Any]) -> None:
    """Give options that neither the user nor a preset set their normal default."""
    for dest, value in defaults.items():
        if not hasattr(args, dest):
            setattr(args, dest, value)
