"""The paper's experiments as commands: Table VIII's six rows, at paper scale (a shell script a lab submits to its own
scheduler; no scheduler of our own) or at smoke scale (the same commands, run by ``reproduction/`` on the bundled CT).

Each row is a ``Row`` of the factors the paper varies (pretraining loss, region alignment, locked segmentation encoder,
connector); its commands are generated from those factors and a ``Scale`` only, so a row's commands differ from its
comparison row's in the paper's factor and in the row's own names (plans ``nnUNetPlans_T8_<row>``, pretraining folder,
results folder), never elsewhere. Every row: fold ``all`` of the training folds, tested on the test set (paper:
TotalSegmentator v1 (dataset 291), fold 1 in imagesTs), ``*CanonicalPrompts`` trainers (one plain name per label, as
the paper), encoders frozen in fine-tuning except row 1's random one (README, "Reproducing the paper", table of
choices). Paths are relative to the folder the commands run in.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from nnunetv2_openvocab.atomic_files import atomic_write


@dataclass(frozen=True)
class Scale:
    """What differs between the paper's run and the smoke run: data, sizes, device, trainer schedule."""
    name: str
    dataset: str                      # nnU-Net dataset id
    dataset_name: str                 # DatasetXXX_Name
    preprocessed: str                 # nnU-Net's folders as the commands see them
    results: str
    raw: str
    base_plans: str                   # plans of the random-init / segmentation-pretrained STU-Net
    planning: Tuple[str, ...]         # flags of the base plan command
    fine_tune_planning: Tuple[str, ...]  # flags of each row's plan command (besides --pretrained)
    pretraining: Tuple[str, ...]      # flags of ``pretrain train``
    on_the_fly: Tuple[str, ...]       # its preprocessing flags when it encodes images itself (a cache fixes them)
    pretrain_device: Tuple[str, ...]
    caching: Tuple[str, ...]          # flags of ``pretrain cache-features``
    pretrain_launcher: Tuple[str, ...]
    device: Tuple[str, ...]           # nnU-Net-style device flag for train / predict / eval_unseen
    trainer_suffix: str               # "" (paper) or "_smoke" (training/smoke_variants.py)
    segmentation_trainer: str         # stock trainer of the segmentation pretraining
    unseen_sets: Tuple[str, ...]
    totalseg_version: str

    @property
    def test_images(self) -> str:
        return f"{self.raw}/{self.dataset_name}/imagesTs"

    @property
    def test_labels(self) -> str:
        return f"{self.raw}/{self.dataset_name}/labelsTs"

    @property
    def segmentation_model(self) -> str:
        return f"{self.results}/{self.dataset_name}/{self.segmentation_trainer}__{self.base_plans}__3d_fullres"


PAPER = Scale(
    "paper", "291", "Dataset291_TotalSegmentatorV1", "$nnUNet_preprocessed", "$nnUNet_results", "$nnUNet_raw",
    "nnUNetPlans_STUNetL", ("--preset", "paper"), ("--preset", "paper"), ("--preset", "paper"), (),
    ("--device", "cuda"), ("--preset", "paper", "--device", "cuda"),
    ("torchrun", "--nproc_per_node", "4", "-m", "nnunetv2_openvocab.commands.pretrain"), (), "",
    "nnUNetTrainer_500epochs", ("totalsegmentator_v1_merged", "totalsegmentator_v1_synonyms"), "v1")

SMOKE_SHAPE = ("--target-spacing", "4", "4", "4", "--patch-size", "48", "48", "48")
SMOKE = Scale(
    "smoke", "980", "Dataset980_OpenVocabSmoke", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_raw",
    "nnUNetPlans_STUNetS_width8",
    ("--stunet", "S", "--width", "8", "--text-encoder", "minilm", "--patch-size", "32", "64", "64", "-np", "2",
     "--no_pbar"),
    ("--stunet", "S", "--width", "8", "--text-encoder", "minilm", "--patch-size", "32", "64", "64", "-np", "2",
     "--no_pbar"),
    ("--text-encoder", "minilm", "--epochs", "2", "--batch-size", "2", "--val-fraction", "0",
     "--text-trainable-layers", "1", "--max-text-tokens", "32", "--num-workers", "0"),
    SMOKE_SHAPE, ("--device", "cpu"),
    ("--num-workers", "0", *SMOKE_SHAPE, "--device", "cpu"),
    ("nnUNetv2_openvocab_pretrain",), ("-device", "cpu"), "_smoke", "nnUNetTrainer_smoke", ("example",), "v1")


@dataclass(frozen=True)
class Row:
    number: int
    name: str
    compared_with: Optional[int]   # the row it differs from in ``factor`` only
    factor: str
    loss: Optional[str] = None     # pretraining loss: None (no pretraining), clip or mgcl
    regions: bool = False          # fine-grained region alignment in pretraining
    locked_encoder: bool = False   # pretrain the text side against the locked segmentation-pretrained encoder
    connector: str = "mlp"         # mlp or cross_attention
    export_of: Optional[int] = None  # reuse another row's pretraining export (row 5: row 3's)


TABLE_VIII = (
    Row(1, "random init + MLP", None, "-"),
    Row(2, "CLIP + MLP", 1, "CLIP pretraining (a pretrained encoder, so frozen in fine-tuning)", loss="clip"),
    Row(3, "MGCL + MLP", 2, "MGCL loss", loss="mgcl"),
    Row(4, "fine-grained + MGCL", 3, "region alignment", loss="mgcl", regions=True),
    Row(5, "MGCL + cross attention", 3, "connector", loss="mgcl", connector="cross_attention", export_of=3),
    Row(6, "pretrained locked encoder + MGCL + MLP", 3, "locked segmentation-pretrained encoder", loss="mgcl",
        locked_encoder=True),
)
ROWS = {row.number: row for row in TABLE_VIII}


def shared_commands(scale: Scale = PAPER) -> List[List[str]]:
    """Before any row: the base plans (STU-Net of the random-init rows and of the segmentation pretraining)."""
    return [["nnUNetv2_openvocab_plan_and_preprocess", "-d", scale.dataset, *scale.planning]]


def pretraining_commands(row: Row, scale: Scale = PAPER) -> List[List[str]]:
    if row.loss is None or row.export_of is not None:
        return []
    run = f"pretrain/T8_{row.number}"
    base_plans = f"{scale.preprocessed}/{scale.dataset_name}/{scale.base_plans}.json"
    if row.locked_encoder:
        image_side = [["nnUNetv2_train", scale.dataset, "3d_fullres", "all", "-tr", scale.segmentation_trainer, "-p",
                       scale.base_plans, *scale.device],
                      ["nnUNetv2_openvocab_pretrain", "cache-features", "--manifest", "curated/manifest.jsonl",
                       "--encoder-checkpoint", f"{scale.segmentation_model}/fold_all/checkpoint_final.pth",
                       "--out", f"{run}_cache", *scale.caching]]
        source = ["--cache", f"{run}_cache"]
    else:
        image_side, source = [], ["--random-image-encoder", "--unlock-image-encoder", "--plans", base_plans]
    manifest = "curated/manifest_regions.jsonl" if row.regions else "curated/manifest.jsonl"
    train = [*scale.pretrain_launcher, "train", "--manifest", manifest, *source, "--loss", row.loss,
             *(["--region-alignment"] if row.regions else []), "--out", run, *scale.pretraining,
             *([] if row.locked_encoder else scale.on_the_fly), *scale.pretrain_device]
    export = ["nnUNetv2_openvocab_pretrain", "export", "--run", run, "--out", f"{run}_aligned"]
    return [*image_side, train, export]


def trainer_of(row: Row, scale: Scale = PAPER) -> str:
    if row.loss is None:
        return "nnUNetTrainerOpenVocabCanonicalPrompts" + scale.trainer_suffix  # a random encoder: nothing to freeze
    connector = "CrossAttention" if row.connector == "cross_attention" else ""
    return f"nnUNetTrainerOpenVocabFrozenEncoder{connector}CanonicalPrompts{scale.trainer_suffix}"


def model_folder(row: Row, scale: Scale = PAPER) -> str:
    return f"{scale.results}/{scale.dataset_name}/{trainer_of(row, scale)}__nnUNetPlans_T8_{row.number}__3d_fullres"


def fine_tuning_commands(row: Row, scale: Scale = PAPER) -> List[List[str]]:
    plans, trainer = f"nnUNetPlans_T8_{row.number}", trainer_of(row, scale)
    export = row.export_of or row.number
    pretrained = ["--pretrained", f"pretrain/T8_{export}_aligned"] if row.loss else []
    results = f"T8_{row.number}"
    return [
        ["nnUNetv2_openvocab_plan_and_preprocess", "-d", scale.dataset, *scale.fine_tune_planning, *pretrained,
         "-overwrite_plans_name", plans],
        ["nnUNetv2_train", scale.dataset, "3d_fullres", "all", "-tr", trainer, "-p", plans, *scale.device],
        ["nnUNetv2_openvocab_predict", "-i", scale.test_images, "-o", f"{results}/predictions", "-d", scale.dataset,
         "-p", plans, "-tr", trainer, "-f", "all", *scale.device],
        ["nnUNetv2_openvocab_evaluate", "-ref", scale.test_labels, "-pred", f"{results}/predictions", "-dj",
         f"{scale.raw}/{scale.dataset_name}/dataset.json", "-o", f"{results}/evaluation", "--totalseg-version",
         scale.totalseg_version],
        *[["nnUNetv2_openvocab_eval_unseen", "-m", model_folder(row, scale), "-f", "all", "-i", scale.test_images,
           "-ref", scale.test_labels, "--set", unseen_set, "-o", f"{results}/unseen_{unseen_set}", *scale.device]
          for unseen_set in scale.unseen_sets],
    ]


def row_commands(row: Row, scale: Scale = PAPER) -> Dict[str, List[List[str]]]:
    return {"pretrain": pretraining_commands(row, scale), "fine-tune": fine_tuning_commands(row, scale)}


def paper_scale_script(rows=TABLE_VIII, table: str = "VIII") -> str:
    """One shell script, a section per row and stage, in order (pretraining exports before the rows that use them)."""
    lines = ["#!/usr/bin/env bash", f"# OpenVocabCT Table {table} at paper scale: submit each stage to your scheduler.",
             "# Needs curated/manifest.jsonl (README, 'Caption curation'); row 4 curated/manifest_regions.jsonl.",
             "set -euo pipefail", "", "# base plans (STU-Net L)"]
    lines += [" ".join(command) for command in shared_commands()]
    for row in rows:
        if row.export_of and ROWS[row.export_of] not in rows:
            lines += ["", f"# row {row.export_of}'s pretraining, whose export row {row.number} uses"]
            lines += [" ".join(command) for command in pretraining_commands(ROWS[row.export_of])]
        for stage, commands in row_commands(row).items():
            if commands:
                lines += ["", f"# row {row.number} ({row.name}), {stage}; differs from row {row.compared_with} in: "
                              f"{row.factor}"]
                lines += [" ".join(command) for command in commands]  # no argument holds a space: no quoting
    return "\n".join(lines) + "\n"


def write_paper_scale_script(output_folder: Path, table: str = "VIII", rows=TABLE_VIII) -> Path:
    return write_table_script(output_folder, table, paper_scale_script(rows, table))


def write_table_script(output_folder: Path, table: str, script: str) -> Path:
    """``table_<table>_paper.sh`` in ``output_folder``, written atomically."""
    path = Path(output_folder) / f"table_{table}_paper.sh"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        handle.write(script)
    return path
