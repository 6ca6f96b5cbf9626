"""The paper's experiments as commands: Table VIII's six rows at paper scale, written as shell scripts a lab submits to
its own scheduler (``nnUNetv2_openvocab_reproduce``; no scheduler of our own).

Each row is a ``Row`` of the factors the paper varies (pretraining loss, region alignment, locked segmentation encoder,
connector); its commands are generated from those factors only, so a row's commands differ from its comparison row's
in the paper's factor and in the row's own names (plans ``nnUNetPlans_T8_<row>``, pretraining folder, results
folder), never elsewhere. Every row: TotalSegmentator v1 (dataset 291), fold ``all`` of the training folds, tested
on fold 1 (imagesTs), ``*CanonicalPrompts`` trainers (one plain name per label, as the paper), encoders frozen in
fine-tuning except row 1's random one (README, "Reproducing the paper", table of choices).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from nnunetv2_openvocab.atomic_files import atomic_write

DATASET = "291"
SEGMENTATION_PLANS = "$nnUNet_preprocessed/Dataset291_TotalSegmentatorV1/nnUNetPlans_STUNetL.json"
RESULTS = "$nnUNet_results/Dataset291_TotalSegmentatorV1"
SEGMENTATION_CHECKPOINT = f"{RESULTS}/nnUNetTrainer_500epochs__nnUNetPlans_STUNetL__3d_fullres/fold_all/checkpoint_final.pth"


@dataclass(frozen=True)
class Row:
    number: int
    name: str
    compared_with: Optional[int]   # the row it differs from in ``factor`` only
    factor: str
    loss: Optional[str] = None     # pretraining loss: None (no pretraining), clip or mgcl
    regions: bool = False          # fine-grained region alignment in pretraining
    locked_encoder: bool = False   # pretrain the text side against the locked 500-epoch segmentation encoder
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


def pretraining_commands(row: Row) -> List[List[str]]:
    if row.loss is None or row.export_of is not None:
        return []
    run = f"pretrain/T8_{row.number}"
    if row.locked_encoder:
        image_side = [["nnUNetv2_openvocab_pretrain", "cache-features", "--preset", "paper", "--manifest",
                       "curated/manifest.jsonl", "--encoder-checkpoint", SEGMENTATION_CHECKPOINT, "--out",
                       f"{run}_cache", "--device", "cuda"]]
        source = ["--cache", f"{run}_cache"]
    else:
        image_side, source = [], ["--random-image-encoder", "--unlock-image-encoder", "--plans", SEGMENTATION_PLANS]
    manifest = "curated/manifest_regions.jsonl" if row.regions else "curated/manifest.jsonl"
    train = ["torchrun", "--nproc_per_node", "4", "-m", "nnunetv2_openvocab.commands.pretrain", "train", "--preset",
             "paper", "--manifest", manifest, *source, "--loss", row.loss, *(["--region-alignment"] if row.regions
                                                                            else []), "--out", run, "--device", "cuda"]
    export = ["nnUNetv2_openvocab_pretrain", "export", "--run", run, "--out", f"{run}_aligned"]
    return [*image_side, train, export]


def trainer_of(row: Row) -> str:
    if row.loss is None:
        return "nnUNetTrainerOpenVocabCanonicalPrompts"  # a random encoder: nothing to freeze
    connector = "CrossAttention" if row.connector == "cross_attention" else ""
    return f"nnUNetTrainerOpenVocabFrozenEncoder{connector}CanonicalPrompts"


def fine_tuning_commands(row: Row) -> List[List[str]]:
    plans, trainer = f"nnUNetPlans_T8_{row.number}", trainer_of(row)
    export = row.export_of or row.number
    pretrained = ["--pretrained", f"pretrain/T8_{export}_aligned"] if row.loss else []
    results = f"T8_{row.number}"
    return [
        ["nnUNetv2_openvocab_plan_and_preprocess", "-d", DATASET, "--preset", "paper", *pretrained,
         "-overwrite_plans_name", plans],
        ["nnUNetv2_train", DATASET, "3d_fullres", "all", "-tr", trainer, "-p", plans],
        ["nnUNetv2_openvocab_predict", "-i", "imagesTs", "-o", f"{results}/predictions", "-d", DATASET, "-p", plans,
         "-tr", trainer, "-f", "all"],
        ["nnUNetv2_openvocab_evaluate", "-ref", "labelsTs", "-pred", f"{results}/predictions", "-dj", "dataset.json",
         "-o", f"{results}/evaluation", "--totalseg-version", "v1"],
        *[["nnUNetv2_openvocab_eval_unseen", "-m", f"{RESULTS}/{trainer}__{plans}__3d_fullres", "-f", "all", "-i", "imagesTs",
           "-ref", "labelsTs", "--set", f"totalsegmentator_v1_{kind}", "-o", f"{results}/unseen_{kind}"]
          for kind in ("merged", "synonyms")],
    ]


def row_commands(row: Row) -> Dict[str, List[List[str]]]:
    return {"pretrain": pretraining_commands(row), "fine-tune": fine_tuning_commands(row)}


def paper_scale_script(rows=TABLE_VIII) -> str:
    """One shell script, a section per row and stage, in order (pretraining exports before the rows that use them)."""
    lines = ["#!/usr/bin/env bash", "# OpenVocabCT Table VIII at paper scale: submit each stage to your scheduler.",
             "set -euo pipefail"]
    for row in rows:
        for stage, commands in row_commands(row).items():
            if commands:
                lines += ["", f"# row {row.number} ({row.name}), {stage}; differs from row {row.compared_with} in: "
                              f"{row.factor}"]
                lines += [" ".join(command) for command in commands]  # no argument holds a space: no quoting
    return "\n".join(lines) + "\n"


def write_paper_scale_script(output_folder: Path, table: str = "VIII") -> Path:
    path = Path(output_folder) / f"table_{table}_paper.sh"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        handle.write(paper_scale_script())
    return path
