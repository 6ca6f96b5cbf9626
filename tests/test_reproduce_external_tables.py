"""``reproduce --table IX|X|V``: the tables outside Table VIII's registry run in the same runner. IX/X evaluate
row 6's model (the paper's) on another dataset's labels after row 6's own steps; V runs stock nnU-Net against ours on
the same folds. Their steps and tables are tested where they are built (test_transfer_tables.py,
test_baseline_table.py, test_baseline_evaluation.py); here, the order and the scripts the command writes."""
from __future__ import annotations

import pytest

from nnunetv2_openvocab.commands import reproduce


@pytest.mark.parametrize("table, converter, dataset", [("IX", "flare22", "951"), ("X", "segthor", "952")])
def test_transfer_table_runs_after_row_6_and_evaluates_row_6_s_model(table, converter, dataset, tmp_path, capsys):
    from conftest import shared_data
    reports = shared_data("ct_rate_reports", "train.csv")
    reproduce.main(["--table", table, "--scale", "smoke", "--out", str(tmp_path / "run"), "--reports", str(reports),
                    "--dry-run"])
    steps = capsys.readouterr().out.splitlines()
    row_6_training = next(i for i, line in enumerate(steps) if "] row 6: nnUNetv2_train" in line)
    convert = next(i for i, line in enumerate(steps) if f"nnUNetv2_openvocab_convert {converter}" in line)
    evaluation = [line for line in steps if "nnUNetv2_openvocab_eval_transfer" in line]
    assert row_6_training < convert and len(evaluation) == 1
    assert ("nnUNetTrainerOpenVocabFrozenEncoderCanonicalPrompts_smoke__nnUNetPlans_T8_6__3d_fullres"
            in evaluation[0]) and f"Dataset{dataset}_" in evaluation[0] and f"--paper-table {table}" in evaluation[0]
    assert not [line for line in steps if "] row " in line and "] row 6: " not in line]
    assert not (tmp_path / "run").exists()


def test_transfer_table_paper_script_is_row_6_then_the_transfer_evaluation(tmp_path, capsys):
    reproduce.main(["--table", "IX", "--scale", "paper", "--out", str(tmp_path / "out"), "--dry-run"])
    printed = capsys.readouterr().out
    assert printed.count("nnUNetv2_train 291 3d_fullres all -tr") == 2  # segmentation pretraining, row 6
    assert printed.index("nnUNetPlans_T8_6") < printed.index("nnUNetv2_openvocab_eval_transfer")
    assert "--paper-table IX" in printed and not (tmp_path / "out").exists()
    reproduce.main(["--table", "IX", "--scale", "paper", "--out", str(tmp_path / "out")])
    assert (tmp_path / "out" / "table_IX_paper.sh").read_text(encoding="utf-8") == printed


def test_table_v_trains_stock_and_ours_on_every_fold_without_table_viii_rows(tmp_path, capsys):
    reproduce.main(["--table", "V", "--scale", "paper", "--out", str(tmp_path / "out"), "--dry-run"])
    printed = capsys.readouterr().out
    for dataset in ("503", "504"):
        for fold in range(5):
            for trainer in ("nnUNetTrainer", "nnUNetTrainerOpenVocabFrozenEncoderCanonicalPrompts"):
                assert f"nnUNetv2_train {dataset} 3d_fullres {fold} -tr {trainer} " in printed
    assert printed.count("nnUNetv2_openvocab_compare") == 2 and "T8_" not in printed
    reproduce.main(["--table", "V", "--scale", "smoke", "--out", str(tmp_path / "run"), "--dry-run"])
    steps = capsys.readouterr().out.splitlines()
    assert steps[0].endswith("(to run): library call") and "table V" in steps[0]
    assert sum("nnUNetv2_train 994 " in line for line in steps) == 4 and "compare" in steps[-1]
    assert not (tmp_path / "run").exists()


def test_rows_apply_to_table_viii_only(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        reproduce.main(["--table", "IX", "--rows", "1", "--scale", "paper", "--out", str(tmp_path), "--dry-run"])
    assert "--rows applies to Table VIII only" in str(exit_info.value)
