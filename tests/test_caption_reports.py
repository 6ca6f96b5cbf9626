"""read_reports: both CSV layouts, impression splitting, problems reported instead of raised."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from caption_curation.reports import read_reports, split_findings_and_impression

SHARED_DATA = Path(
    os.environ.get("OPENVOCAB_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)
REAL_REPORTS = SHARED_DATA / "ct_rate_reports" / "train.csv"


def test_ct_rate_release_layout_with_missing_and_empty_fields(tmp_path):
    csv = tmp_path / "train_reports.csv"
    pd.DataFrame(
        {
            "VolumeName": ["train_1_a_1.nii.gz", "train_1_a_2.nii.gz", "", "train_3_a_1.nii.gz", "train_4_a_1.nii.gz",
                           "train_1_a_1.nii.gz"],
            "ClinicalInformation_EN": ["x"] * 6,
            "Findings_EN": ["Liver is normal.", "Liver is normal.", "Spleen normal.", None, "  ", "again"],
            "Impressions_EN": ["Normal study.", "Normal study.", "x", "Emphysema.", None, "again"],
        }
    ).to_csv(csv, index=False)
    result = read_reports(csv)
    assert [r.volume for r in result.reports] == ["train_1_a_1.nii.gz", "train_1_a_2.nii.gz", "train_3_a_1.nii.gz"]
    first, second, impression_only = result.reports
    assert (first.findings, first.impression, first.text) == ("Liver is normal.", "Normal study.",
                                                              "Liver is normal.\nNormal study.")
    assert first.content_hash == second.content_hash  # reconstructions of one study share the report
    assert impression_only.report_level_text == "Emphysema." and impression_only.row == 4
    problems = "\n".join(result.problems)
    assert "row 3: no volume name; row skipped" in problems
    assert "row 4 (train_3_a_1.nii.gz): findings empty" in problems
    assert "row 5 (train_4_a_1.nii.gz): findings and impression are both empty; row skipped" in problems
    assert "row 6 (train_1_a_1.nii.gz): volume name repeated" in problems


def test_excerpt_layout_splits_the_impression_at_the_quote(tmp_path):
    csv = tmp_path / "train.csv"
    csv.write_text('AccessionNo,report_text,Emphysema\n'
                   'train_1,"Trachea is open.  Lungs are clear. "" Normal thorax CT",0\n'
                   'train_2,"Heart is normal.",0\n', encoding="utf-8")
    result = read_reports(csv)
    assert [(r.volume, r.findings, r.impression) for r in result.reports] == [
        ("train_1", "Trachea is open. Lungs are clear.", "Normal thorax CT"),
        ("train_2", "Heart is normal.", ""),
    ]
    assert result.problems == ["train.csv row 2 (train_2): impression empty"]


def test_split_keeps_later_quotes_inside_the_impression():
    assert split_findings_and_impression('A. " B " C') == ("A.", "B C")


def test_unknown_layout_names_the_file_and_the_expected_columns(tmp_path):
    csv = tmp_path / "other.csv"
    csv.write_text("id,text\n1,x\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"other.csv: unknown report table.*VolumeName.*report_text.*\['id', 'text'\]"):
        read_reports(csv)
    with pytest.raises(FileNotFoundError, match="--reports"):
        read_reports(tmp_path / "missing.csv")


@pytest.mark.skipif(not REAL_REPORTS.is_file(), reason="shared CT-RATE reports not available")
def test_reads_the_800_real_reports():
    result = read_reports(REAL_REPORTS)
    assert len(result.reports) == 800
    assert all(r.findings for r in result.reports)
    with_impression = [r for r in result.reports if r.impression]
    assert len(with_impression) > 500
    assert result.reports[0].impression == "Thoracic CT examination within normal limits"
    assert all(p.endswith("impression empty") for p in result.problems)
