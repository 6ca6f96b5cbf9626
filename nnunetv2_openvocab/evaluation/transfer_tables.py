"""Tables IX (FLARE22) and X (SegTHOR) of OpenVocabCT: their commands at paper and smoke scale, and the table in the
paper's layout (markdown and CSV) with the published values (data/paper_published_transfer_baseline.json) beside
this run's.

For the ``reproduce`` runner: ``transfer_commands(table, scale, out, model_folder)`` gives the ordered argv lists
(convert the target dataset, then ``eval_transfer``); at smoke scale ``prepare_smoke_inputs(table, out)`` first
writes the target's native replica from the bundled CT; ``write_paper_table(table, out/<table's folder>, out)``
builds the table from the run's ``transfer_summary.json``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Union

from nnunetv2_openvocab.evaluation.challenge_replicas import write_challenge_replica
from nnunetv2_openvocab.evaluation.report_writers import write_paper_layout_table
from nnunetv2_openvocab.json_input import read_json_file

PUBLISHED = Path(__file__).resolve().parents[1] / "data" / "paper_published_transfer_baseline.json"
# the paper's model (README, "Reproducing the paper": row 6 of Table VIII, trained on TotalSegmentator v1 only)
PAPER_MODEL = ("$nnUNet_results/Dataset291_TotalSegmentatorV1/"
               "nnUNetTrainerOpenVocabFrozenEncoderCanonicalPrompts__nnUNetPlans_OpenVocabCT__3d_fullres")
# table -> (converter, dataset id and name at paper scale, the challenge's download folder, smoke dataset id)
PAPER_TABLES = {"IX": ("flare22", 501, "FLARE22", "FLARE22Train", 951),
                "X": ("segthor", 502, "SegTHOR", "SegTHOR/train", 952)}
OURS = "OpenVocabCT (this run)"
UNMAPPABLE_CELL = "unmappable"


def _target(table: str) -> tuple:
    if table not in PAPER_TABLES:
        raise ValueError(f"Table {table!r} is not a transfer table; expected one of {sorted(PAPER_TABLES)}.")
    return PAPER_TABLES[table]


def run_folder(table: str, out: Union[str, Path]) -> Path:
    """Where the table's eval_transfer writes (its transfer_summary.json)."""
    return Path(out) / f"table_{table}"


def prepare_smoke_inputs(table: str, out: Union[str, Path]) -> Path:
    """Smoke scale: the target challenge's training data as it ships, made from the bundled CT (challenge_replicas)."""
    converter = _target(table)[0]
    return write_challenge_replica(converter, Path(out) / f"native_{converter}")


def transfer_commands(table: str, scale: str, out: Union[str, Path],
                      model_folder: Optional[Union[str, Path]] = None) -> List[List[str]]:
    """Ordered commands of Table IX or X: convert the target's labelled cases, then evaluate the TotalSegmentator
    model on them (no fine-tuning). ``scale``: "paper" (the challenge's download, $nnUNet_raw, the paper's model)
    or "smoke" (``prepare_smoke_inputs``' replica under ``out``, ``model_folder`` required: the smoke model)."""
    converter, paper_id, name, download, smoke_id = _target(table)
    if scale == "paper":
        native, raw, dataset_id, model = download, "$nnUNet_raw", paper_id, str(model_folder or PAPER_MODEL)
        device = []
    elif scale == "smoke":
        if model_folder is None:
            raise ValueError("Smoke scale needs the smoke model's folder (model_folder).")
        native, raw = str(Path(out) / f"native_{converter}"), str(Path(out) / "nnUNet_raw")  # the runner's raw
        dataset_id, model = smoke_id, str(model_folder)
        device = ["-device", "cpu", "--disable_tta", "-step_size", "1", "-np", "1", "--disable_progress_bar"]
    else:
        raise ValueError(f"scale {scale!r}: expected 'paper' or 'smoke'.")
    dataset = f"{raw}/Dataset{dataset_id:03d}_{name}"
    return [
        ["nnUNetv2_openvocab_convert", converter, "-i", native, "-d", str(dataset_id), "-o", raw],
        ["nnUNetv2_openvocab_eval_transfer", "-m", model, "-f", "all", "-i", f"{dataset}/imagesTr",
         "-ref", f"{dataset}/labelsTr", "-dj", f"{dataset}/dataset.json", "-o", str(run_folder(table, out)),
         "--paper-table", table, *device],
    ]


def _percent(value: Optional[float]) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def build_paper_table(table: str, transfer_summary: Union[Mapping, str, Path]) -> Dict:
    """The paper's layout: one column per target label in the paper's order, then Avg; the published rows, then
    ours from ``transfer_summary`` (eval_transfer's summary or its folder). Our unmappable labels read
    "unmappable"; our Avg is over the labels we scored (``n_scored`` of ``n_labels``)."""
    _target(table)
    if not isinstance(transfer_summary, Mapping):
        transfer_summary = read_json_file(Path(transfer_summary) / "transfer_summary.json",
                                          "Run nnUNetv2_openvocab_eval_transfer first.", what="transfer summary")
    published = read_json_file(PUBLISHED, "Reinstall the package.", what="published values")[table]
    ours = {row["label"]: row for row in transfer_summary["labels"]}
    labels = [column["label"] for column in published["columns"]]
    missing = [label for label in labels if label not in ours]
    if missing:
        raise ValueError(f"The transfer summary has no row for {missing}: evaluate the {published['dataset']} "
                         "dataset converted by nnUNetv2_openvocab_convert (-dj its dataset.json).")
    header = ["Method", *[column["header"] for column in published["columns"]], "Avg"]
    rows = [[f"{row['method']} (paper)", *[f"{row['values'][label]:.1f}" for label in labels], f"{row['avg']:.1f}"]
            for row in published["rows"]]
    scored = [ours[label]["dice"] for label in labels if ours[label]["mappable"] and ours[label]["dice"] is not None
              and not math.isnan(ours[label]["dice"])]
    cells = [_percent(ours[label]["dice"]) if ours[label]["mappable"] else UNMAPPABLE_CELL for label in labels]
    rows.append([OURS, *cells, _percent(sum(scored) / len(scored) if scored else None)])
    return {"title": f"Table {table}. {published['title']}. {published['metric']}.", "header": header, "rows": rows,
            "n_labels": len(labels), "n_scored": len(scored),
            "unmappable": [label for label in labels if not ours[label]["mappable"]]}


def write_paper_table(table: str, transfer_summary: Union[Mapping, str, Path],
                      output_folder: Union[str, Path]) -> Dict[str, str]:
    built = build_paper_table(table, transfer_summary)
    note = (f"{OURS}: Avg over the {built['n_scored']} of {built['n_labels']} labels scored; unmappable (listed in "
            f"transfer_summary.md): {', '.join(built['unmappable']) or 'none'}.")
    written = write_paper_layout_table(built, Path(output_folder), f"table_{table}", [note])
    return {f"table_{kind}": str(path) for kind, path in written.items()}
