"""``nnUNetv2_openvocab_reproduce --table VIII --scale paper``: each row's commands differ from its comparison row's
only in the paper's factor (after the row's own names: plans, pretraining and results folders, are aligned)."""
from __future__ import annotations

import re

import pytest

from nnunetv2_openvocab.commands import reproduce
from nnunetv2_openvocab.paper_tables import PAPER, TABLE_VIII, row_commands

ROWS = {row.number: row for row in TABLE_VIII}
# the tokens the paper's factor may change between a row and the one it is compared with
FACTOR_TOKENS = {
    2: {"--pretrained", "pretrain/T8_k_aligned", "nnUNetTrainerOpenVocabCanonicalPrompts",
        "nnUNetTrainerOpenVocabFrozenEncoderCanonicalPrompts"},  # plus its pretraining stage, which row 1 lacks
    3: {"clip", "mgcl"},
    4: {"--region-alignment", "curated/manifest.jsonl", "curated/manifest_regions.jsonl"},
    5: {"nnUNetTrainerOpenVocabFrozenEncoderCanonicalPrompts", "nnUNetTrainerOpenVocabFrozenEncoderCrossAttentionCanonicalPrompts",
        "pretrain/T8_3_aligned", "pretrain/T8_k_aligned"},  # and no pretraining stage: row 3's export
    6: {"cache-features", "--cache", "pretrain/T8_k_cache", "--random-image-encoder", "--unlock-image-encoder", "--plans",
        "--encoder-checkpoint", "nnUNetTrainer_500epochs", "nnUNetPlans_STUNetL"},  # its segmentation pretraining
}


def tokens(number: int, stages=("pretrain", "fine-tune")) -> list:
    """Every token of the row's commands in ``stages``, its own names replaced by placeholders."""
    own = re.compile(rf"T8_{number}(?=\b|_)")
    commands = row_commands(ROWS[number])
    return [own.sub("T8_k", token) for stage in stages for command in commands[stage] for token in command]


@pytest.mark.parametrize("number", sorted(FACTOR_TOKENS))
def test_a_row_differs_from_its_comparison_row_in_the_paper_s_factor_only(number):
    row = ROWS[number]
    both = [stage for stage in ("pretrain", "fine-tune")  # a stage only one of the two has is the factor itself
            if row_commands(row)[stage] and row_commands(ROWS[row.compared_with])[stage]]
    mine, theirs = tokens(number, both), tokens(row.compared_with, both)
    changed = (set(mine) ^ set(theirs)) - {token for token in mine + theirs if "$nnUNet" in token}
    assert changed and changed <= FACTOR_TOKENS[number], sorted(changed - FACTOR_TOKENS[number])
    # what every row shares: fold all, canonical prompts, the same test set and unseen sets
    assert {"all", PAPER.test_images, PAPER.test_labels, "totalsegmentator_v1_merged",
            "totalsegmentator_v1_synonyms"} <= set(mine)
    assert both == ["pretrain", "fine-tune"] or number in (2, 5)  # row 1 has no pretraining, row 5 reuses row 3's


def test_each_row_has_its_own_plans_and_results_and_row_5_reuses_row_3_s_pretraining():
    plans = [next(t for c in row_commands(r)["fine-tune"] for t in c if t.startswith("nnUNetPlans_")) for r in TABLE_VIII]
    assert len(set(plans)) == 6
    assert row_commands(ROWS[5])["pretrain"] == [] and "pretrain/T8_3_aligned" in tokens(5)
    assert all("FrozenEncoder" in t for r in TABLE_VIII[1:] for c in row_commands(r)["fine-tune"] for t in c
               if t.startswith("nnUNetTrainer"))


def test_dry_run_prints_the_script_and_writes_nothing(tmp_path, capsys):
    reproduce.main(["--table", "VIII", "--scale", "paper", "--out", str(tmp_path / "out"), "--dry-run"])
    printed = capsys.readouterr().out
    assert printed.count("nnUNetv2_train 291 3d_fullres all -tr nnUNetTrainerOpenVocab") == 6
    assert printed.count("-tr nnUNetTrainer_500epochs") == 1 and not (tmp_path / "out").exists()
    reproduce.main(["--table", "VIII", "--scale", "paper", "--out", str(tmp_path / "out")])
    assert (tmp_path / "out" / "table_VIII_paper.sh").read_text(encoding="utf-8") == printed


def test_smoke_dry_run_of_table_ii_lists_row_6_s_steps_only_and_writes_nothing(tmp_path, capsys):
    from conftest import shared_data
    reports = shared_data("ct_rate_reports", "train.csv")
    reproduce.main(["--table", "II", "--scale", "smoke", "--out", str(tmp_path / "run"), "--reports", str(reports),
                    "--dry-run"])
    steps = capsys.readouterr().out.splitlines()
    row_steps = [line for line in steps if "] row " in line]
    assert row_steps and all("] row 6: " in line for line in row_steps)
    assert sum("nnUNetv2_train 980 3d_fullres all -tr nnUNetTrainer_smoke " in line for line in steps) == 1
    assert sum("nnUNetTrainerOpenVocabFrozenEncoderCanonicalPrompts_smoke" in line and "nnUNetPlans_T8_6" in line
               for line in steps) == 3  # train, predict, eval_unseen
    assert all("(to run)" in line for line in steps) and not (tmp_path / "run").exists()


def test_smoke_and_paper_scale_run_the_same_command_sequence():
    """The smoke run types the paper's commands: the same programs and sub-commands in the same order per row
    (eval_unseen runs once per unseen set: two at paper scale, the example set at smoke scale)."""
    from itertools import groupby

    from nnunetv2_openvocab.paper_tables import SMOKE

    def program(command):
        if command[0] == "torchrun":  # torchrun ... -m nnunetv2_openvocab.commands.pretrain train
            return "nnUNetv2_openvocab_pretrain", command[command.index("-m") + 2]
        return tuple(command[:2]) if command[0] == "nnUNetv2_openvocab_pretrain" else (command[0],)

    def sequence(row, scale):
        return [key for key, _ in groupby(program(c) for stage in row_commands(row, scale).values() for c in stage)]
    for row in TABLE_VIII:
        assert sequence(row, SMOKE) == sequence(row, PAPER), row.number


@pytest.mark.parametrize("arguments, message", [
    (["--table", "II", "--rows", "1"], "--rows applies to Table VIII only"),
    (["--table", "VIII", "--rows", "1,7"], "Table VIII has rows 1-6"),
])
def test_bad_rows_exit_with_one_line(tmp_path, arguments, message):
    with pytest.raises(SystemExit) as exit_info:
        reproduce.main([*arguments, "--scale", "paper", "--out", str(tmp_path), "--dry-run"])
    assert message in str(exit_info.value.code)  # SystemExit with the one line: a non-zero exit


def test_each_smoke_trainer_is_the_paper_s_trainer_with_the_smoke_schedule_only():
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunetv2_openvocab import training
    from nnunetv2_openvocab.paper_tables import SMOKE, trainer_of
    from nnunetv2_openvocab.training.smoke_variants import SmokeSchedule

    pairs = {(trainer_of(row, SMOKE), getattr(training, trainer_of(row))) for row in TABLE_VIII}
    pairs.add((SMOKE.segmentation_trainer, nnUNetTrainer))  # stands in for stock nnUNetTrainer_500epochs
    for smoke_name, paper_trainer in pairs:
        smoke = getattr(training, smoke_name)  # in the registry, so nnUNetv2_train finds it through the shim
        assert smoke.__bases__ == (SmokeSchedule, paper_trainer), smoke_name
