"""MetaCLIP balancing of RadLex-matched captions: the sampling rule on synthetic pools, and the caption yield
of the whole offline curation on the 800 real CT-RATE reports against the full RadLex list."""
from __future__ import annotations

import csv
import json
import os
import random
from pathlib import Path

import pytest

from caption_curation.balancing import BalanceSettings, balance_captions
from caption_curation.captions import Caption, CuratedReport
from caption_curation.curate import STATS_FILE, curate_captions
from nnunetv2_openvocab.commands.curate_captions import main
from caption_curation.offline_decomposer import is_negated
from caption_curation.reports import Report

SHARED_DATA = Path(
    os.environ.get("OPENVOCAB_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)
REAL_REPORTS = SHARED_DATA / "ct_rate_reports" / "train.csv"
FULL_RADLEX = SHARED_DATA / "radlex" / "tekram_Radlex_2017.csv"


def pool(captions_per_report: list[list[tuple[str, tuple[str, ...]]]]) -> list[CuratedReport]:
    reports = []
    for index, captions in enumerate(captions_per_report):
        kept = [(Caption(text, text), terms) for text, terms in captions]
        reports.append(CuratedReport(Report(f"vol_{index}", "findings", "", index + 1), [c for c, _ in kept], kept))
    return reports


def kept_texts(curated: list[CuratedReport]) -> list[list[str]]:
    return [[caption.text for caption, _ in item.kept] for item in curated]


def test_head_terms_keep_about_t_captions_and_tail_terms_keep_all():
    corpus = pool([[(f"lung {i} clear", ("lung",)), (f"rare finding {i}", (f"rare_{i % 50}",))] for i in range(2000)])
    balanced, stats = balance_captions(corpus, BalanceSettings(t=100, seed=3))
    lung_kept = sum(text.startswith("lung") for texts in kept_texts(balanced) for text in texts)
    assert 70 <= lung_kept <= 130  # binomial(2000, 100/2000): mean 100, sd 9.7
    assert sum(text.startswith("rare") for texts in kept_texts(balanced) for text in texts) == 2000  # 40 per term
    assert stats["t"] == 100 and stats["t_rule"] == "given" and stats["seed"] == 3
    assert stats["head_terms"] == 1 and stats["matched_terms"] == 51
    assert stats["top_terms"][0] == {"term": "lung", "matched": 2000, "kept": lung_kept,
                                     "kept_share": round(lung_kept / 2000, 4)}


def test_a_caption_survives_through_any_of_its_terms():
    corpus = pool([[(f"lung nodule {i}", ("lung", f"nodule_{i}"))] for i in range(500)])
    balanced, _ = balance_captions(corpus, BalanceSettings(t=1))
    assert all(len(texts) == 1 for texts in kept_texts(balanced))  # each nodule term is a tail term


def test_draws_are_seeded_and_independent_of_report_order():
    corpus = pool([[(f"lung {i}", ("lung",)), (f"heart {i}", ("heart",))] for i in range(300)])
    first = dict(zip((item.report.volume for item in corpus), kept_texts(balance_captions(corpus, BalanceSettings(10))[0])))
    shuffled = random.Random(0).sample(corpus, len(corpus))
    again = dict(zip((item.report.volume for item in shuffled),
                     kept_texts(balance_captions(shuffled, BalanceSettings(10))[0])))
    assert first == again
    other_seed = balance_captions(corpus, BalanceSettings(10, seed=1))[0]
    assert kept_texts(other_seed) != list(first.values())


def test_default_t_scales_with_the_corpus_and_bad_t_is_refused(capsys):
    assert BalanceSettings().threshold(800) == (10, "auto: ceil(0.0125 x 800 reports)")
    assert BalanceSettings().threshold(50188)[0] == 628
    with pytest.raises(ValueError, match="balancing t must be >= 1"):
        BalanceSettings(t=0)
    with pytest.raises(SystemExit):
        main(["--reports", "r.csv", "--out", "o", "--balance-t", "0"])
    assert "--balance-t needs a value >= 1" in capsys.readouterr().err


@pytest.mark.skipif(not (REAL_REPORTS.is_file() and FULL_RADLEX.is_file()), reason="shared data not available")
def test_caption_yield_on_the_real_reports_meets_the_paper_goal(tmp_path):
    """Median 2 to 5 kept captions per report (the paper keeps 3 of 7), negations kept, none without a term."""
    out = tmp_path / "out"
    summary = curate_captions(REAL_REPORTS, out, radlex=FULL_RADLEX)
    stats = json.loads((out / STATS_FILE).read_text(encoding="utf-8"))
    kept = stats["captions_per_report"]["after_filter"]
    assert 2 <= kept["median"] <= 5 and 2 <= kept["mean"] <= 5
    assert stats["captions_per_report"]["before_filter"]["median"] >= 3 * kept["median"]
    assert stats["balancing"]["t"] == 10 and stats["balancing"]["seed"] == 0
    assert len(stats["balancing"]["top_terms"]) == 20
    assert all(0 < entry["kept_share"] < 1 for entry in stats["balancing"]["top_terms"])
    assert stats["caption_source"] == {"findings": 800, "impression": 0, "impression_volumes": []}

    with open(out / "captions.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == summary.captions_kept and all(row["matched_terms"] for row in rows)
    negated = [row["caption"] for row in rows if is_negated(row["caption"])]
    assert len(negated) / len(rows) >= 0.1  # "No pleural effusion" and the like stay in the corpus


def test_captions_come_from_the_findings_and_from_the_impression_only_without_findings(tmp_path):
    terms = tmp_path / "terms.txt"
    terms.write_text("liver\nspleen\nheart\n", encoding="utf-8")
    reports = tmp_path / "reports.csv"
    with open(reports, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["VolumeName", "Findings_EN", "Impressions_EN"])
        writer.writerow(["a.nii.gz", "The liver is normal.", "The spleen is enlarged."])
        writer.writerow(["b.nii.gz", "", "The heart is enlarged."])
    curate_captions(reports, tmp_path / "out", radlex=terms, balance=None)
    manifest = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert [entry["captions"] for entry in manifest] == [["The liver is normal"], ["The heart is enlarged"]]
    stats = json.loads((tmp_path / "out" / STATS_FILE).read_text(encoding="utf-8"))
    assert stats["caption_source"] == {"findings": 1, "impression": 1, "impression_volumes": ["b.nii.gz"]}
    assert stats["balancing"] is None
