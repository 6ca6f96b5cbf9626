"""``nnUNetv2_openvocab_pretrain``: contrastive (MGCL) pretraining in three stages, one subcommand each."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from typing import Optional, Type

from nnunetv2_openvocab.paper_presets import PRETRAIN_PRESETS, apply_preset
from nnunetv2_openvocab.user_errors import exit_on_user_error
from nnunetv2_openvocab.pretraining.memory_arguments import add_memory_arguments, memory_options
from nnunetv2_openvocab.pretraining.config import (
    LOSS_CHOICES, REPORT_SECTIONS, PreprocessingConfig, TrainConfig, config_from_dict, config_to_dict, load_config)

EPILOG = """\
worked example (CT-RATE manifest from caption curation, STU-Net trained with nnU-Net on TotalSegmentator):
  nnUNetv2_openvocab_pretrain cache-features --manifest curated/manifest.jsonl \\
      --encoder-checkpoint $nnUNet_results/Dataset291_TotalSeg/STUNetTrainer__nnUNetPlans__3d_fullres/fold_0/checkpoint_final.pth \\
      --out pretrain/cache --device cuda --shard 0 --num-shards 4      # run shards 0..3 anywhere, rerun to resume
  torchrun --nproc_per_node 4 -m nnunetv2_openvocab.commands.pretrain train \\
      --manifest curated/manifest.jsonl --cache pretrain/cache --text-encoder FremyCompany/BioLORD-2023 \\
      --out pretrain/run --device cuda --batch-size 32              # add --resume to continue after a stop
  nnUNetv2_openvocab_pretrain export --run pretrain/run --out pretrain/aligned
then plan with: nnUNetv2_openvocab_plan_and_preprocess ... --pretrained pretrain/aligned
"""


PRESET_FLAGS = {"target_spacing": "--target-spacing", "patch_size": "--patch-size", "num_captions": "--num-captions",
                "report_section": "--report-section", "batch_size": "--batch-size",
                "num_augmented_views": "--augmented-views"}
PREPROCESSING_FIELDS = {field.name for field in dataclasses.fields(PreprocessingConfig)}


def _add_preprocessing_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("preprocessing (defaults: the paper's 1.5 mm, 220^3, no augmented views)")
    group.add_argument("--preprocessing-config", help="JSON file with PreprocessingConfig fields; flags override it")
    group.add_argument("--target-spacing", dest="target_spacing", type=float, nargs=3, default=argparse.SUPPRESS,
                       metavar="MM", help="resampling target in nnU-Net's axis order (default 1.5 1.5 1.5)")
    group.add_argument("--patch-size", dest="patch_size", type=int, nargs=3, default=argparse.SUPPRESS,
                       metavar="VOXELS", help="centre pad/crop size (default 220 220 220)")
    group.add_argument("--augmented-views", dest="num_augmented_views", type=int, default=argparse.SUPPRESS,
                       help="augmented views per volume besides the plain one (default 0)")


def _add_encoder_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--encoder-checkpoint", required=required,
                        help="nnU-Net checkpoint (or model folder) of a segmentation-trained STUNet")
    parser.add_argument("--plans", help="plans.json of that model (default: found next to the checkpoint)")
    parser.add_argument("--configuration", default="3d_fullres", help="plans configuration (default 3d_fullres)")


def _config(cls: Type, json_path: Optional[str], args: argparse.Namespace):
    """`cls` from a JSON file overridden by the flags given on the command line; None if neither is given."""
    given = {field.name: getattr(args, field.name) for field in dataclasses.fields(cls) if hasattr(args, field.name)}
    if json_path is None and not given:
        return None
    base = config_to_dict(load_config(cls, json_path)) if json_path else {}
    return config_from_dict(cls, {**base, **given}, source="command line")


def _apply_preset(args: argparse.Namespace) -> None:
    """Fill the preset's settings: cache-features takes its preprocessing part; train takes all of it, or only
    the TrainConfig part with --cache (whose preprocessing is fixed)."""
    preset = PRETRAIN_PRESETS[args.preset]
    if args.stage == "cache-features":
        preset = {dest: value for dest, value in preset.items() if dest in PREPROCESSING_FIELDS}
    elif args.cache is not None:
        preset = {dest: value for dest, value in preset.items() if dest not in PREPROCESSING_FIELDS}
        print(f"preset {args.preset}: preprocessing (spacing, patch size, augmented views) comes from --cache "
              f"{args.cache}; create the cache with the same values (see README)")
    for line in apply_preset(args, {args.preset: preset}, args.preset, PRESET_FLAGS):
        print(line)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnUNetv2_openvocab_pretrain", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    stages = parser.add_subparsers(dest="stage", required=True)

    cache = stages.add_parser("cache-features", help="encode every volume once with the locked image encoder",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    cache.add_argument("--manifest", required=True, help="manifest.jsonl: {volume, report, captions} per line")
    _add_encoder_arguments(cache, required=True)
    cache.add_argument("--out", required=True, help="cache folder (created; rerun to resume)")
    cache.add_argument("--shard", type=int, default=0, help="this process's shard, 0..num-shards-1")
    cache.add_argument("--num-shards", type=int, default=1)
    cache.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    cache.add_argument("--num-workers", type=int, default=2, help="preprocessing worker processes")
    cache.add_argument("--preset", choices=sorted(PRETRAIN_PRESETS),
                       help="paper: its preprocessing (1.5 mm, 220^3, 4 augmented views); flags override it")
    _add_preprocessing_arguments(cache)

    train = stages.add_parser("train", help="contrastive training of the text side (torchrun for several processes)",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--manifest", required=True)
    train.add_argument("--out", required=True, help="run folder: checkpoint, logs, loss curve")
    train.add_argument("--cache", help="feature cache from cache-features (the fast, locked-encoder route)")
    _add_encoder_arguments(train, required=False)
    train.add_argument("--config", help="JSON file with TrainConfig fields; flags override it")
    train.add_argument("--preset", choices=sorted(PRETRAIN_PRESETS),
                       help="paper: 1.5 mm, 220^3, K=3 captions, findings section as report text, batch 32 per "
                            "process, 4 augmented views (the preprocessing part only when encoding on the fly; "
                            "a --cache fixes it). Explicit flags override it; what it set is printed")
    train.add_argument("--text-encoder", dest="text_encoder", default=argparse.SUPPRESS,
                       help="sentence-transformers model id or folder, loaded offline (default FremyCompany/BioLORD-2023; "
                            "'minilm' for the small offline test model)")
    train.add_argument("--text-trainable-layers", dest="text_trainable_layers", type=int, default=argparse.SUPPRESS,
                       help="-1 all (default), N the last N transformer layers, 0 projection only")
    train.add_argument("--loss", dest="loss", choices=LOSS_CHOICES, default=argparse.SUPPRESS,
                       help="mgcl (default): report + K sampled captions; clip: report only (ablation)")
    train.add_argument("--num-captions", dest="num_captions", type=int, default=argparse.SUPPRESS,
                       help="captions sampled per image per step, K (default 3)")
    train.add_argument("--report-section", dest="report_section", choices=REPORT_SECTIONS, default=argparse.SUPPRESS,
                       help="full: the manifest's report as written (default); findings: its 'Findings:' section")
    train.add_argument("--batch-size", dest="batch_size", type=int, default=argparse.SUPPRESS,
                       help="samples per process (default 32)")
    train.add_argument("--epochs", dest="epochs", type=int, default=argparse.SUPPRESS)
    train.add_argument("--text-encoder-lr", dest="text_encoder_lr", type=float, default=argparse.SUPPRESS)
    train.add_argument("--head-lr", dest="head_lr", type=float, default=argparse.SUPPRESS,
                       help="learning rate of the projection and the temperature")
    train.add_argument("--image-encoder-lr", dest="image_encoder_lr", type=float, default=argparse.SUPPRESS,
                       help="learning rate of the image encoder when it trains (--unlock-image-encoder; default 1e-5)")
    train.add_argument("--max-text-tokens", dest="max_text_tokens", type=int, default=argparse.SUPPRESS)
    train.add_argument("--val-fraction", dest="val_fraction", type=float, default=argparse.SUPPRESS)
    train.add_argument("--seed", dest="seed", type=int, default=argparse.SUPPRESS)
    train.add_argument("--unlock-image-encoder", dest="unlock_image_encoder", action="store_true",
                       default=argparse.SUPPRESS,
                       help="train the image encoder too (ablation; needs --encoder-checkpoint or "
                            "--random-image-encoder)")
    train.add_argument("--region-alignment", dest="region_alignment", action="store_true", default=argparse.SUPPRESS,
                       help="add fine-grained alignment: the last encoder stage averaged inside each manifest region "
                            "vs its caption (Table VIII row 4; needs --unlock-image-encoder)")
    train.add_argument("--random-image-encoder", action="store_true",
                       help="start from the randomly initialised STUNet of --plans instead of a checkpoint (Table VIII "
                            "rows 2 to 4; needs --unlock-image-encoder)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    train.add_argument("--stop-after-steps", type=int, help="stop (with a checkpoint) after this many steps in total")
    train.add_argument("--device", default="cpu", help="cpu or cuda (each torchrun process takes cuda:LOCAL_RANK)")
    train.add_argument("--num-workers", type=int, default=2, help="preprocessing workers when encoding on the fly")
    add_memory_arguments(train)
    _add_preprocessing_arguments(train)

    export = stages.add_parser("export", help="write the aligned checkpoint for the planner and trainer",
                               epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("--run", required=True, help="run folder of the train stage")
    export.add_argument("--out", required=True, help="aligned checkpoint folder to write")
    return parser


def main(argv: Optional[list[str]] = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if getattr(args, "preset", None):
        _apply_preset(args)
    with exit_on_user_error("nnUNetv2_openvocab_pretrain"):
        _run_stage(args)


def _run_stage(args: argparse.Namespace) -> None:
    preprocessing = (_config(PreprocessingConfig, args.preprocessing_config, args)
                     if args.stage != "export" else None)
    if args.stage == "cache-features":
        from nnunetv2_openvocab.pretraining.cache_features import cache_features

        written = cache_features(args.manifest, args.encoder_checkpoint, args.out,
                                 preprocessing or PreprocessingConfig(), args.plans, args.configuration,
                                 args.shard, args.num_shards, args.device, args.num_workers)
        print(f"cached {written} volumes into {args.out}")
    elif args.stage == "train" and args.estimate_memory:
        from nnunetv2_openvocab.memory_estimate.estimates import estimate_pretraining

        print(estimate_pretraining(_config(TrainConfig, args.config, args), args.cache, args.encoder_checkpoint,
                                   args.plans, args.configuration, preprocessing, args.device, memory_options(args)))
    elif args.stage == "train":
        from nnunetv2_openvocab.pretraining.train import train

        run = train(args.manifest, args.out, _config(TrainConfig, args.config, args), args.cache,
                    args.encoder_checkpoint, args.plans, args.configuration, preprocessing, args.device,
                    args.resume, args.stop_after_steps, args.num_workers, args.random_image_encoder,
                    memory_options(args))
        if os.environ.get("RANK", "0") == "0":  # once under torchrun
            print(f"run in {run}")
    else:
        from nnunetv2_openvocab.pretraining.export import export_aligned_checkpoint

        print(f"aligned checkpoint written to {export_aligned_checkpoint(args.run, args.out)}")


if __name__ == "__main__":
    main()
