"""Table II categories in ``nnUNetv2_openvocab_evaluate`` and ``nnUNetv2_openvocab_compare`` end to end.

Ten TotalSegmentator v2 structures (two per Table II category) are cut from the real TotalSegmentator label map
into four cases. Evaluation A scores predictions shifted by 1 to 4 voxels (one shift per case), evaluation B
the references themselves, so B - A is positive for every prompt and category; the p-values must equal
scipy's on the per-case values of metrics_per_case.csv.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from nnunetv2_openvocab.commands import compare as compare_entry, evaluate as evaluate_entry
from nnunetv2_openvocab.evaluation.table2_categories import load_category_maps, detect_category_map
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name
from conftest import SHARED_DATA, read_shared_label_map

# TotalSegmentator v2 "total" ids of two structures per Table II category
TOTALSEG_IDS = {"liver": 5, "spleen": 1, "vertebrae_L1": 31, "vertebrae_T12": 32, "aorta": 52,
                "inferior_vena_cava": 63, "autochthon_left": 86, "autochthon_right": 87, "rib_left_10": 101,
                "rib_right_10": 113}
LABELS = {"background": 0, **{name: i for i, name in enumerate(TOTALSEG_IDS, start=1)}}
CASES = [f"case_{shift}" for shift in range(1, 5)]


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory):
    io, totalseg, properties = read_shared_label_map("totalsegmentator", "example_seg.nii.gz")
    root = tmp_path_factory.mktemp("compare")
    for folder in ("labels", "pred_a", "pred_b"):
        (root / folder).mkdir()
    dataset_json = {"labels": LABELS, "file_ending": ".nii.gz",
                    "text_prompts": {name: [name.replace("_", " ")] for name in TOTALSEG_IDS}}
    (root / "dataset.json").write_text(json.dumps(dataset_json))
    label_map = np.zeros(totalseg.shape, np.uint8)
    for name, totalseg_id in TOTALSEG_IDS.items():
        label_map[totalseg == totalseg_id] = LABELS[name]
    for shift, case in enumerate(CASES, start=1):
        io.write_seg(label_map, str(root / "labels" / f"{case}.nii.gz"), properties)
        for name in TOTALSEG_IDS:
            mask = (label_map == LABELS[name]).astype(np.uint8)
            prompt = dataset_json["text_prompts"][name][0]
            io.write_seg(np.roll(mask, shift, axis=0), str(root / "pred_a" / prompt_file_name(case, prompt)), properties)
            io.write_seg(mask, str(root / "pred_b" / prompt_file_name(case, prompt)), properties)
    for name in ("a", "b"):
        evaluate_entry.main(["-ref", str(root / "labels"), "-pred", str(root / f"pred_{name}"),
                             "-dj", str(root / "dataset.json"), "-o", str(root / f"eval_{name}"), "-np", "1"])
    return root


def _per_case(evaluation: Path, prompts: list, metric: str) -> np.ndarray:
    """(cases,) mean over ``prompts`` per case, from the per-case rows of the evaluation's summary.json."""
    rows = [row for row in json.loads((evaluation / "summary.json").read_text())["per_case"] if row["prompt"] in prompts]
    return np.array([np.mean([r[metric] for r in rows if r["case"] == case]) for case in CASES])


def test_evaluate_groups_totalsegmentator_labels_into_table2_categories(evaluations):
    summary = json.loads((evaluations / "eval_a" / "summary.json").read_text())
    table2 = summary["table2"]
    assert table2["version"] == "v2"
    assert {c: e["prompts"] for c, e in table2["categories"].items()} == {
        "vertebrae": ["vertebrae L1", "vertebrae T12"], "cardiac": ["aorta", "inferior vena cava"],
        "muscles": ["autochthon left", "autochthon right"], "organs": ["liver", "spleen"],
        "ribs": ["rib left 10", "rib right 10"]}
    organs = np.mean([summary["mean"][p]["dice"] for p in ("liver", "spleen")])
    assert table2["categories"]["organs"]["dice"] == pytest.approx(organs)
    assert table2["average"]["nsd"] == pytest.approx(np.mean([e["nsd"] for e in table2["categories"].values()]))
    markdown = (evaluations / "eval_a" / "summary.md").read_text()
    assert "| | Vertebrae | Cardiac | Muscles | Organs | Ribs | Avg |" in markdown


def test_category_maps_cover_both_totalsegmentator_versions():
    maps = load_category_maps()
    for version, class_map in (("v1", "class_map_total_v1.json"), ("v2", "class_map_total.json")):
        path = SHARED_DATA / "totalsegmentator" / class_map
        if path.is_file():
            assert set(maps[version].category_of) == set(json.loads(path.read_text()).values())
    v1 = detect_category_map(["heart_myocardium", "esophagus", "aorta", "sacrum", "rib_left_1"])
    assert v1.version == "v1"
    assert [v1.category_of[n] for n in ("heart_myocardium", "esophagus", "aorta", "sacrum")] == [
        "cardiac", "cardiac", "organs", "muscles"]
    v2 = detect_category_map(["heart", "esophagus", "aorta", "sacrum"])
    assert [v2.category_of[n] for n in ("heart", "esophagus", "aorta", "sacrum")] == [
        "cardiac", "organs", "cardiac", "vertebrae"]
    assert detect_category_map(["liver", "liver_tumor"]) is None
    assert detect_category_map(["esophagus"], "v1").version == "v1"


def test_compare_gives_the_right_sign_and_scipys_p_values(evaluations, capsys):
    out = evaluations / "compare"
    compare_entry.main([str(evaluations / "eval_a"), str(evaluations / "eval_b"), "-o", str(out)])
    assert "## Per Table II category" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["comparison.csv", "comparison.json", "comparison.md",
                                                     "comparison.png"]
    rows = json.loads((out / "comparison.json").read_text())["rows"]
    assert {(r["level"], r["name"]) for r in rows if r["metric"] == "dice"} >= {
        ("prompt", "liver"), ("category", "ribs"), ("all", "all prompts")}
    assert all(r["mean_difference"] > 0 and r["n_cases"] == 4 for r in rows if r["metric"] == "dice")

    checks = {("prompt", "liver"): ["liver"], ("category", "vertebrae"): ["vertebrae L1", "vertebrae T12"],
              ("all", "all prompts"): [name.replace("_", " ") for name in TOTALSEG_IDS]}
    for (level, name), prompts in checks.items():
        for metric in ("dice", "nsd"):
            a, b = (_per_case(evaluations / f"eval_{x}", prompts, metric) for x in "ab")
            row = next(r for r in rows if (r["level"], r["name"], r["metric"]) == (level, name, metric))
            assert row["mean_difference"] == pytest.approx(np.mean(b - a), rel=1e-12)
            assert row["t_pvalue"] == pytest.approx(stats.ttest_rel(b, a).pvalue, rel=1e-12)
            assert row["wilcoxon_pvalue"] == pytest.approx(stats.wilcoxon(b, a).pvalue, rel=1e-12)

    compare_entry.main([str(evaluations / "eval_b"), str(evaluations / "eval_a"), "-o", str(evaluations / "swapped")])
    swapped = json.loads((evaluations / "swapped" / "comparison.json").read_text())["rows"]
    assert [r["mean_difference"] for r in swapped] == pytest.approx([-r["mean_difference"] for r in rows])


def _without_case(evaluations: Path, case: str) -> Path:
    folder = evaluations / f"eval_b_without_{case}"
    shutil.copytree(evaluations / "eval_b", folder, dirs_exist_ok=True)
    summary = json.loads((folder / "summary.json").read_text())
    summary["per_case"] = [row for row in summary["per_case"] if row["case"] != case]
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_missing_and_mismatched_evaluations_fail_with_one_line(evaluations, capsys):
    a = str(evaluations / "eval_a")
    out = evaluations / "refused"
    with pytest.raises(SystemExit) as missing:
        compare_entry.main([a, str(evaluations / "no_such_eval"), "-o", str(out)])
    assert "does not exist; run nnUNetv2_openvocab_evaluate" in str(missing.value)
    with pytest.raises(SystemExit) as cases:
        compare_entry.main([a, str(_without_case(evaluations, "case_2")), "-o", str(out)])
    assert "score different cases: only in A ['case_2']" in str(cases.value)
    evaluate_entry.main(["-ref", str(evaluations / "labels"), "-pred", str(evaluations / "pred_b"),
                         "-dj", str(evaluations / "dataset.json"), "-o", str(evaluations / "eval_b_2mm"),
                         "-np", "1", "--tolerance-mm", "2"])
    with pytest.raises(SystemExit) as tolerance:
        compare_entry.main([a, str(evaluations / "eval_b_2mm"), "-o", str(out)])
    assert "NSD tolerances differ (A 1.0 mm, B 2.0 mm)" in str(tolerance.value)
    for error in (missing, cases, tolerance):
        assert "\n" not in str(error.value) and str(error.value).startswith("nnUNetv2_openvocab_compare: error:")
    assert not out.exists()
