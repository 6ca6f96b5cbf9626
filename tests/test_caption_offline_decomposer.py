"""OfflineDecomposer: rule-based organ-level captions; spot checks on the 800 real CT-RATE reports."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from caption_curation.anatomy_tagger import default_tagger
from caption_curation.offline_decomposer import OfflineDecomposer, is_negated
from caption_curation.radlex_filter import RadLexFilter
from caption_curation.reports import Report, read_reports
from caption_curation.sentence_splitter import split_sentences

SHARED_DATA = Path(
    os.environ.get("OPENVOCAB_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)
REAL_REPORTS = SHARED_DATA / "ct_rate_reports" / "train.csv"


def captions_of(findings: str, impression: str = "") -> list[str]:
    return [c.text for c in OfflineDecomposer().decompose(Report("v", findings, impression, 1).text)]


def test_sentence_splitting_handles_bullets_abbreviations_and_decimals():
    text = "Nodule of approx. 3.5 mm in the lung. Liver normal.• Stable cyst (cyst?). abdominal aorta is open"
    assert split_sentences(text) == ["Nodule of approx. 3.5 mm in the lung.", "Liver normal.",
                                     "Stable cyst (cyst?).", "abdominal aorta is open"]


def test_negations_stay_negative():
    assert captions_of("No pleural effusion.") == ["No pleural effusion"]
    assert captions_of("Pleural effusion-thickening was not detected.") == ["Pleural effusion-thickening was not detected"]


def test_lead_in_is_dropped_only_when_the_rest_names_an_organ():
    assert captions_of("When examined in the lung parenchyma window; Aeration of both lungs is normal.") == [
        "Aeration of both lungs is normal"]
    kept_whole = "In the evaluation of both lung parenchyma; no active infiltration is detected"
    assert captions_of(kept_whole + ".") == [kept_whole]


def test_organless_follow_up_sentence_joins_the_previous_organ_caption():
    captions = captions_of("The spleen is normal in size. No space-occupying lesion was detected. "
                           "Clinical correlation is recommended.")
    assert captions == ["The spleen is normal in size. No space-occupying lesion was detected",
                        "Clinical correlation is recommended"]


def test_repeated_sentences_give_one_caption_and_output_is_deterministic():
    report = Report("v", "Liver is normal. Heart is normal.", "Liver is normal.", 1)
    first = OfflineDecomposer().decompose(report.text)
    assert [c.text for c in first] == ["Liver is normal", "Heart is normal"]
    assert OfflineDecomposer().decompose(report.text) == first


def test_tagger_prefers_the_longest_organ_name():
    tagger = default_tagger()
    assert tagger.organs("Calibration of the pulmonary artery is normal") == ["pulmonary artery"]
    assert tagger.organs("Hepatic steatosis; both kidneys normal") == ["liver", "kidney"]


@pytest.fixture(scope="module")
def real_captions():
    if not REAL_REPORTS.is_file():
        pytest.skip("shared CT-RATE reports not available")
    decomposer = OfflineDecomposer()
    return [(report, decomposer.decompose(report.text)) for report in read_reports(REAL_REPORTS).reports]


def test_real_liver_sentences_become_liver_captions(real_captions):
    tagger = default_tagger()
    liver_sentences = 0
    for report, captions in real_captions:
        for sentence in split_sentences(report.text):
            if re.search(r"\bliver\b", sentence, re.IGNORECASE):
                liver_sentences += 1
                holders = [c for c in captions if sentence in c.source_sentence]
                assert holders, f"{report.volume}: liver sentence lost: {sentence}"
                assert "liver" in tagger.organs(holders[0].text), holders[0]
    assert liver_sentences > 500


def test_real_negative_pleural_effusion_findings_stay_negative(real_captions):
    checked = 0
    for report, captions in real_captions:
        for caption in captions:
            if "pleural effusion" in caption.text.lower() and is_negated(caption.source_sentence):
                checked += 1
                assert is_negated(caption.text), f"{report.volume}: negation lost: {caption}"
    assert checked > 100


def test_real_reports_give_sensible_filtered_captions(real_captions):
    radlex = RadLexFilter.from_file()
    before = [len(captions) for _, captions in real_captions]
    kept = [[c for c in captions if radlex.matched_terms(c.text)] for _, captions in real_captions]
    assert 10 < sum(before) / len(before) < 30
    assert 0 < sum(map(len, kept)) / sum(before) < 1  # the filter removes some captions, not all
    assert all(kept_captions for kept_captions in kept)  # every real report keeps at least one caption
    texts = {c.text for captions in kept for c in captions}
    assert "Clinical correlation is recommended" not in texts
    assert "Pericardial effusion-thickening was not observed" in texts
