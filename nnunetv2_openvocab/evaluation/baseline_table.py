"""Table V of OpenVocabCT (fine-tuning on SegRap2023 and COVID-19, ours against stock nnU-Net with paired tests):
its commands at paper and smoke scale, and the table in the paper's layout from ``compare``'s output, the published
values (data/paper_published_transfer_baseline.json) beside this run's.

Per dataset: stock nnU-Net (nnU-Net's own plans, ``nnUNetTrainer``) and ours (the README's paper model: the
MGCL-aligned encoder, locked) are trained on the same preprocessed dataset, hence the same ``splits_final.json``
and the same cases per fold; ``nnUNetv2_train`` predicts each fold's held-out cases into ``fold_k/validation`` (the
cross-validation's predictions); ``evaluate --cv`` scores both over the same folds, ``compare`` pairs them by case.

At smoke scale the dataset is the bundled CT (``prepare_smoke_inputs``: five axial slabs, liver and spleen), two of
the five folds, the ``*_smoke`` trainers, and both trainers on the small STU-Net plans (nnU-Net's own planner picks
a patch of the whole scan, too slow on 2 CPU cores), as tests/test_baseline_evaluation.py runs it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Tuple, Union

from nnunetv2_openvocab.evaluation.compare_writers import OUTPUT_FILES
from nnunetv2_openvocab.evaluation.report_writers import percent, write_paper_layout_table
from nnunetv2_openvocab.example_dataset import build_example_dataset
from nnunetv2_openvocab.json_input import read_json_file

PUBLISHED = Path(__file__).resolve().parents[1] / "data" / "paper_published_transfer_baseline.json"


@dataclass(frozen=True)
class BaselineRun:
    """What one scale runs: datasets (column, converter argv or None, id, folder name), folds, trainers, plans."""
    datasets: Tuple[Tuple[str, Tuple[str, ...], int, str], ...]
    folds: Tuple[int, ...]
    stock_plan: Tuple[str, ...]
    stock_trainer: str
    stock_plans: str
    ours_plan: Tuple[str, ...]
    ours_trainer: str
    ours_plans: str
    raw: str
    results: str
    device: Tuple[str, ...] = ()


PAPER = BaselineRun(
    datasets=(("SegRap2023", ("segrap2023", "--task", "oar", "-i", "SegRap2023"), 503, "Dataset503_SegRap2023"),
              ("COVID-19", ("covid19", "-i", "COVID-19-20_v2"), 504, "Dataset504_COVID19")),
    folds=(0, 1, 2, 3, 4),
    stock_plan=("nnUNetv2_plan_and_preprocess", "-c", "3d_fullres", "--verify_dataset_integrity"),
    stock_trainer="nnUNetTrainer", stock_plans="nnUNetPlans",
    ours_plan=("nnUNetv2_openvocab_plan_and_preprocess", "--preset", "paper", "--pretrained",
               "pretrain/mgcl_aligned"),
    ours_trainer="nnUNetTrainerOpenVocabFrozenEncoderCanonicalPrompts", ours_plans="nnUNetPlans_OpenVocabCT",
    raw="$nnUNet_raw", results="$nnUNet_results")
SMOKE_DATASET_ID, SMOKE_STRUCTURES = 994, ("liver", "spleen")
SMOKE_SLABS = ((64, None), (72, None), (80, None), (64, 104), (72, 112))  # upper-abdomen slabs: five cases


def smoke_run(out: Union[str, Path]) -> BaselineRun:
    stunet = ("nnUNetv2_openvocab_plan_and_preprocess", "--stunet", "S", "--width", "8", "--text-encoder", "minilm",
              "--patch-size", "32", "64", "64", "-np", "2", "--no_pbar")
    return BaselineRun(
        datasets=(("bundled CT (smoke)", (), SMOKE_DATASET_ID, f"Dataset{SMOKE_DATASET_ID}_OpenVocabExample"),),
        folds=(0, 1), stock_plan=stunet, stock_trainer="nnUNetTrainer_smoke", stock_plans="nnUNetPlans_STUNetS_width8",
        ours_plan=(), ours_trainer="nnUNetTrainerOpenVocabCanonicalPrompts_smoke",
        ours_plans="nnUNetPlans_STUNetS_width8", raw=str(Path(out) / "nnUNet_raw"),
        results=str(Path(out) / "nnUNet_results"),
        device=("-device", "cpu"))


def prepare_smoke_inputs(out: Union[str, Path]) -> Path:
    """Smoke scale: the bundled CT as a five-case dataset under ``out/nnUNet_raw`` (the reproduce runner's
    nnUNet_raw)."""
    return build_example_dataset(Path(out) / "nnUNet_raw", SMOKE_DATASET_ID, structures=SMOKE_STRUCTURES,
                                 case_slabs=SMOKE_SLABS)


def run_folders(out: Union[str, Path], column: str) -> Dict[str, Path]:
    """Where one dataset's evaluations and comparison go (``compare`` is what ``build_table_v`` reads)."""
    folder = Path(out) / "table_V" / column.split(" ")[0]
    return {"stock": folder / "eval_nnunet", "ours": folder / "eval_openvocab", "compare": folder / "compare"}


def table_v_commands(scale: str, out: Union[str, Path]) -> List[List[str]]:
    """Ordered commands of Table V: per dataset convert (paper), plan stock then ours, train every fold of both
    (each writes its fold_k/validation), evaluate both with --cv over the same folds, compare (A stock, B ours)."""
    if scale not in ("paper", "smoke"):
        raise ValueError(f"scale {scale!r}: expected 'paper' or 'smoke'.")
    run = PAPER if scale == "paper" else smoke_run(out)
    folds = [str(fold) for fold in run.folds]
    commands = []
    for column, convert, dataset_id, name in run.datasets:
        if convert:
            commands.append(["nnUNetv2_openvocab_convert", *convert, "-d", str(dataset_id), "-o", run.raw])
        commands.append([*run.stock_plan[:1], "-d", str(dataset_id), *run.stock_plan[1:]])
        if run.ours_plan:
            commands.append([*run.ours_plan[:1], "-d", str(dataset_id), *run.ours_plan[1:], "-overwrite_plans_name",
                             run.ours_plans])
        trained = {}
        for side, trainer, plans in (("stock", run.stock_trainer, run.stock_plans),
                                     ("ours", run.ours_trainer, run.ours_plans)):
            commands += [["nnUNetv2_train", str(dataset_id), "3d_fullres", fold, "-tr", trainer, "-p", plans,
                          *run.device] for fold in folds]
            trained[side] = f"{run.results}/{name}/{trainer}__{plans}__3d_fullres"
        evaluations = run_folders(out, column)
        commands += [["nnUNetv2_openvocab_evaluate", "--cv", trained[side], "--cv-folds", *folds,
                      "-ref", f"{run.raw}/{name}/labelsTr", "-o", str(evaluations[side])] for side in ("stock", "ours")]
        commands.append(["nnUNetv2_openvocab_compare", str(evaluations["stock"]), str(evaluations["ours"]),
                         "-o", str(evaluations["compare"])])
    return commands


def _all_prompts(comparison: Mapping) -> Dict[str, Mapping]:
    return {row["metric"]: row for row in comparison["rows"] if row["level"] == "all"}


def _p(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3g}"


def build_table_v(compare_folders: Mapping[str, Union[str, Path]]) -> Dict:
    """The paper's layout (DSC and NSD per dataset): the published rows, then nnUNet and OpenVocabCT of this run
    and the paired t-test p-values (paper's and ours), from each dataset's ``compare`` folder
    ({column: folder}, e.g. {"SegRap2023": out/table_V/SegRap2023/compare}). A dataset not run reads "-"."""
    published = read_json_file(PUBLISHED, "Reinstall the package.", what="published values")["V"]
    columns = list(dict.fromkeys([*published["datasets"], *compare_folders]))
    ours = {column: _all_prompts(read_json_file(Path(folder) / OUTPUT_FILES["json"],
                                                "Run nnUNetv2_openvocab_compare first.", what="comparison"))
            for column, folder in compare_folders.items()}
    header = ["Method", *[f"{column} {metric}" for column in columns for metric in ("DSC", "NSD")]]

    def published_cells(values: Mapping, format_value) -> List[str]:
        return [format_value(values[c][m]) if c in values else "-" for c in columns for m in ("dice", "nsd")]

    def run_cells(key: str, format_value) -> List[str]:
        return [format_value(ours[c][m][key]) if c in ours else "-" for c in columns for m in ("dice", "nsd")]

    rows = [[f"{row['method']} (paper)", *published_cells(row["values"], "{:.2f}".format)]
            for row in published["rows"]]
    rows.append(["nnUNet vs OpenVocabCT paired t-test p (paper)",
                 *published_cells(published["p_values_nnunet_vs_openvocab"], _p)])
    rows += [["nnUNet (this run)", *run_cells("mean_a", percent)],
             ["OpenVocabCT (this run)", *run_cells("mean_b", percent)],
             ["nnUNet vs OpenVocabCT paired t-test p (this run)", *run_cells("t_pvalue", _p)],
             ["cases (this run)", *run_cells("n_cases", str)]]
    return {"title": f"Table V. {published['title']}; this run's means over cases of all prompts.",
            "header": header, "rows": rows}


def write_table_v(compare_folders: Mapping[str, Union[str, Path]], output_folder: Union[str, Path]) -> Dict[str, str]:
    written = write_paper_layout_table(build_table_v(compare_folders), Path(output_folder), "table_V")
    return {kind: str(path) for kind, path in written.items()}


def compare_folders(scale: str, out: Union[str, Path]) -> Dict[str, Path]:
    """{column: compare folder} of a scale's datasets: what ``write_table_v`` reads after ``table_v_commands``."""
    run = PAPER if scale == "paper" else smoke_run(out)
    return {column: run_folders(out, column)["compare"] for column, *_ in run.datasets}
