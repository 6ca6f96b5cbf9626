"""``reproduce``: a paper table at smoke scale (run the real commands, resumable, then the table) or at paper scale
(the shell script of the same commands for a lab's scheduler)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from nnunetv2_openvocab.demo import DemoError, demo_environment
from nnunetv2_openvocab.paper_tables import (ROWS, SMOKE, paper_scale_script, row_commands, shared_commands,
                                             write_paper_scale_script, write_table_script)
from nnunetv2_openvocab.reproduction.external_tables import (EXTERNAL_TABLES, external_paper_script,
                                                             external_smoke_steps, write_external_table)
from nnunetv2_openvocab.reproduction.smoke_data import build_smoke_dataset, write_smoke_manifests
from nnunetv2_openvocab.reproduction.steps import Step, StepRunner, check_run_folder
from nnunetv2_openvocab.reproduction.table_writers import table_cells, write_table
from nnunetv2_openvocab.reproduction.tables import TABLES
from nnunetv2_openvocab.training.smoke_variants import SmokeSchedule
from nnunetv2_openvocab.user_errors import UserError

SHARED_REPORTS = Path("ct_rate_reports") / "train.csv"


def selected_runs(table: str, rows: Optional[Sequence[int]]) -> List[int]:
    if rows is None:
        return list(EXTERNAL_TABLES[table] if table in EXTERNAL_TABLES else TABLES[table].runs)
    if table != "VIII":
        raise UserError(f"--rows applies to Table VIII only; Table {table} uses row 6's run. Fix: drop --rows.")
    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        raise UserError(f"--rows {','.join(map(str, unknown))}: Table VIII has rows 1-6.")
    return sorted(set(rows))


def default_reports() -> Optional[Path]:
    shared = os.environ.get("OPENVOCAB_SHARED_DATA")
    return Path(shared) / SHARED_REPORTS if shared else None


def _label(row: int, command: Sequence[str]) -> str:
    name = command[0] if command[0] != "torchrun" else command[4]
    detail = f" {command[1]}" if name == "nnUNetv2_openvocab_pretrain" else ""
    return f"row {row}: {name}{detail}"


def smoke_steps(table: str, runs: Sequence[int], folder: Path, env: Dict[str, str],
                reports: Optional[Path]) -> List[Step]:
    raw = Path(env["nnUNet_raw"])
    dataset = raw / SMOKE.dataset_name
    steps = [Step(f"dataset {SMOKE.dataset_name} from the bundled CT",
                  call=lambda: build_smoke_dataset(raw, int(SMOKE.dataset), SMOKE.dataset_name.split("_", 1)[1]))
             ] if runs else []
    if any(ROWS[k].loss for k in runs):
        if reports is None or not reports.is_file():
            raise UserError(f"--reports {reports or '(not given)'}: CT-RATE reports CSV not found (needed for the "
                            f"pretraining captions). Fix: pass --reports shared/data/ct_rate_reports/train.csv or "
                            f"set OPENVOCAB_SHARED_DATA.")
        steps += [Step("captions: offline decomposer on the CT-RATE reports",
                       ("nnUNetv2_openvocab_curate_captions", "--reports", str(reports), "--out", "captions",
                        "--processes", "1")),
                  Step("smoke manifests (curated captions paired with the dataset's volumes)",
                       call=lambda: write_smoke_manifests(dataset, folder / "captions" / "manifest.jsonl",
                                                          folder / "curated")),
                  *[Step("base plans", tuple(command)) for command in shared_commands(SMOKE)]]
    for number in runs:
        row = ROWS[number]
        labelled = [(row.export_of, c) for c in row_commands(ROWS[row.export_of], SMOKE)["pretrain"]] \
            if row.export_of else []  # row 5 fine-tunes row 3's export
        labelled += [(number, c) for stage in row_commands(row, SMOKE).values() for c in stage]
        steps += [Step(_label(owner, c), tuple(c), epochs=SmokeSchedule.schedule[0] if c[0] == "nnUNetv2_train"
                       else None) for owner, c in labelled]
    if table in EXTERNAL_TABLES:
        steps += external_smoke_steps(table, folder)
    unique: Dict[str, Step] = {}
    for step in steps:  # a step two rows share (row 5 uses row 3's pretraining) runs once, at its first place
        unique.setdefault(step.key, step)
    return list(unique.values())


def run_smoke(table: str, runs: Sequence[int], output_folder: Path, reports: Optional[Path],
              dry_run: bool = False) -> Dict[str, Path]:
    folder = check_run_folder(output_folder)
    env = demo_environment(folder)
    runner = StepRunner(folder, env)
    steps = smoke_steps(table, runs, folder, env, reports)
    if dry_run:
        for index, step in enumerate(steps, start=1):
            state = "done" if runner.marker(step).is_file() else "to run"
            print(f"[{index}/{len(steps)}] {step.label} ({state}): {' '.join(step.command) or 'library call'}")
        return {}
    try:
        runner.run(steps)
    except DemoError as error:
        raise UserError(f"{error}\nFix the cause and run the same command again: finished steps are skipped.")
    if table in EXTERNAL_TABLES:
        return {**write_external_table(table, folder), "paper-scale commands": write_paper_script(table, folder)}
    paths = write_table(table_cells(TABLES[table], list(runs), folder), folder, SMOKE.name)
    paths["paper-scale commands"] = write_paper_scale_script(folder, table, [ROWS[k] for k in runs])
    return paths


def write_paper_script(table: str, output_folder: Path) -> Path:
    """table_<T>_paper.sh of a table outside Table VIII's registry (V, IX, X)."""
    return write_table_script(output_folder, table, external_paper_script(table, Path(output_folder)))


def reproduce(table: str, rows: Optional[Sequence[int]], scale: str, output_folder: Path,
              reports: Optional[Path] = None, dry_run: bool = False) -> Dict[str, Path]:
    runs = selected_runs(table, rows)
    if scale == "smoke":
        return run_smoke(table, runs, Path(output_folder), reports or default_reports(), dry_run)
    if table in EXTERNAL_TABLES:
        if dry_run:
            print(external_paper_script(table, Path(output_folder)), end="")
            return {}
        return {"paper-scale commands": write_paper_script(table, Path(output_folder))}
    if dry_run:
        print(paper_scale_script([ROWS[k] for k in runs], table), end="")
        return {}
    return {"paper-scale commands": write_paper_scale_script(Path(output_folder), table, [ROWS[k] for k in runs])}
