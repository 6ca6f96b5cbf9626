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
