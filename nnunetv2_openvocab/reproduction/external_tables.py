"""The tables that go beyond Table VIII's rows, in the same runner: IX and X (Table VIII row 6's model, the paper's,
evaluated on FLARE22's and SegTHOR's labels without fine-tuning: evaluation/transfer_tables.py) and V (stock
nnU-Net against ours, cross-validated, paired tests: evaluation/baseline_table.py). Their steps and tables are
those modules'; this one only orders them after the runs they need and names their outputs."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from nnunetv2_openvocab.evaluation import baseline_table, transfer_tables
from nnunetv2_openvocab.paper_tables import ROWS, SMOKE, model_folder, paper_scale_script
from nnunetv2_openvocab.reproduction.steps import Step
from nnunetv2_openvocab.training.smoke_variants import SmokeSchedule

TRANSFER_TABLES = tuple(transfer_tables.PAPER_TABLES)  # IX, X
EXTERNAL_TABLES = {"V": (), **{table: (6,) for table in TRANSFER_TABLES}}  # table -> Table VIII rows it needs


def _steps(table: str, commands: List[List[str]]) -> List[Step]:
    return [Step(f"table {table}: {command[0]}", tuple(command),
                 epochs=SmokeSchedule.schedule[0] if command[0] == "nnUNetv2_train" else None) for command in commands]


def external_smoke_steps(table: str, folder: Path) -> List[Step]:
    """The table's own steps at smoke scale (after the Table VIII rows of ``EXTERNAL_TABLES[table]``)."""
    if table == "V":
        return [Step("table V: five-slab dataset from the bundled CT",
                     call=lambda: baseline_table.prepare_smoke_inputs(folder)),
                *_steps(table, baseline_table.table_v_commands("smoke", folder))]
    smoke_model = folder / model_folder(ROWS[6], SMOKE)  # the paper's model (row 6) at smoke scale
    return [Step(f"table {table}: the challenge's native layout from the bundled CT",
                 call=lambda: transfer_tables.prepare_smoke_inputs(table, folder)),
            *_steps(table, transfer_tables.transfer_commands(table, "smoke", folder, smoke_model))]


def write_external_table(table: str, folder: Path) -> Dict[str, Path]:
    if table == "V":
        written = baseline_table.write_table_v(baseline_table.compare_folders("smoke", folder), folder)
    else:
        written = transfer_tables.write_paper_table(table, transfer_tables.run_folder(table, folder), folder)
    return {f"table {table} {kind}": Path(path) for kind, path in written.items()}


def external_paper_script(table: str, output_folder: Path) -> str:
    """Table IX/X: row 6's commands (the paper's model) then the transfer evaluation; Table V: the cross-validated
    comparison, which fine-tunes the MGCL export of README 'Reproducing the paper'."""
    if table == "V":
        lines = ["#!/usr/bin/env bash", "# OpenVocabCT Table V at paper scale: submit each stage to your scheduler.",
                 "# Needs the MGCL export pretrain/mgcl_aligned (README, 'Reproducing the paper').",
                 "set -euo pipefail", ""]
        lines += [" ".join(command) for command in baseline_table.table_v_commands("paper", output_folder)]
        return "\n".join(lines) + "\n"
    transfer = transfer_tables.transfer_commands(table, "paper", output_folder)
    return (paper_scale_script([ROWS[6]], table) + f"\n# Table {table}: row 6's model on the target's labels, no "
            f"fine-tuning\n" + "\n".join(" ".join(command) for command in transfer) + "\n")
