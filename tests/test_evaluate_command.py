"""``nnUNetv2_openvocab_evaluate`` end to end on a tiny dataset cut from the real TotalSegmentator label map.

Two cases: abdomen_a (the label map) and abdomen_b (gallbladder removed; kidney_left not annotated).
Predictions are the references with the liver eroded by one voxel, and a one-voxel gallbladder speck in
abdomen_b (below the detection threshold, so a true negative).
"""
import json
import shutil
import subprocess

import numpy as np
import pytest
from scipy import ndimage

from nnunetv2_openvocab.commands.evaluate import main
from nnunetv2_openvocab.evaluation.evaluate_folder import evaluate_folder
from nnunetv2_openvocab.evaluation.metrics import dice_coefficient
from nnunetv2_openvocab.evaluation.surface_distance import normalized_surface_distance
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name
from conftest import read_shared_label_map

# our label -> TotalSegmentator "total" id
TOTALSEG_IDS = {"liver": 5, "spleen": 1, "kidney_right": 2, "kidney_left": 3, "gallbladder": 4}
TEXT_PROMPTS = {"liver": ["liver", "hepatic organ"], "spleen": ["spleen"], "kidney_right": ["right kidney"],
                "kidney_left": ["left kidney"], "gallbladder": ["gallbladder"]}
LABELS = {"background": 0, **{name: i for i, name in enumerate(TOTALSEG_IDS, start=1)}}
MERGED_SET = {"name": "merged", "description": "merged organs and a synonym", "prompts": [
    {"prompt": "renal organs", "targets": ["kidney_left", "kidney_right"], "kind": "merged"},
    {"prompt": "hepatic system", "targets": ["liver"], "kind": "synonym"}]}


def _write(io, array, path, properties):
    io.write_seg(array.astype(np.uint8), str(path), properties)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    io, totalseg, properties = read_shared_label_map("totalsegmentator", "example_seg.nii.gz")
    root = tmp_path_factory.mktemp("evaluate")
    (root / "labels").mkdir()
    (root / "pred").mkdir()
    dataset_json = {"labels": LABELS, "file_ending": ".nii.gz", "text_prompts": TEXT_PROMPTS,
                    "annotated_labels": {"abdomen_b": ["liver", "spleen", "kidney_right", "gallbladder"]}}
    (root / "dataset.json").write_text(json.dumps(dataset_json))
    (root / "merged.json").write_text(json.dumps(MERGED_SET))
    masks = {case: {name: totalseg == TOTALSEG_IDS[name] for name in TOTALSEG_IDS}
             for case in ("abdomen_a", "abdomen_b")}
    masks["abdomen_b"]["gallbladder"][:] = False
    for case, structures in masks.items():
        label_map = np.zeros(totalseg.shape, np.uint8)
        for name, mask in structures.items():
            label_map[mask] = LABELS[name]
        _write(io, label_map, root / "labels" / f"{case}.nii.gz", properties)
        predicted = dict(structures, liver=ndimage.binary_erosion(structures["liver"]))
        if case == "abdomen_b":
            predicted["gallbladder"] = np.zeros_like(label_map, bool)
            predicted["gallbladder"][15, 50, 60] = True  # 0.027 ml speck
        for name, mask in predicted.items():
            _write(io, mask, root / "pred" / prompt_file_name(case, TEXT_PROMPTS[name][0]), properties)
        _write(io, predicted["kidney_left"] | predicted["kidney_right"],
               root / "pred" / prompt_file_name(case, "renal organs"), properties)
        _write(io, predicted["liver"], root / "pred" / prompt_file_name(case, "hepatic system"), properties)
    return root, masks, io, properties


def _strict_json(path):
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


def test_command_writes_all_reports_with_expected_metrics(dataset, capsys):
    root, masks, _, _ = dataset
    out = root / "out_default"
    main(["-ref", str(root / "labels"), "-pred", str(root / "pred"), "-dj", str(root / "dataset.json"),
          "-o", str(out), "--detection-prompts", "gallbladder", "-np", "1"])
    printed = capsys.readouterr().out
    assert "| liver | liver |" in printed and "Lesion detection" in printed

    summary = _strict_json(out / "summary.json")
    liver = masks["abdomen_a"]["liver"]
    eroded = ndimage.binary_erosion(liver)
    assert summary["mean"]["liver"]["dice"] == pytest.approx(dice_coefficient(liver, eroded))
    assert summary["mean"]["liver"]["nsd"] == pytest.approx(normalized_surface_distance(liver, eroded, (3, 3, 3), 1.0))
    assert summary["mean"]["liver"]["nsd"] == pytest.approx(0.3335, abs=1e-3)
    assert summary["mean"]["spleen"]["dice"] == summary["mean"]["spleen"]["nsd"] == 1.0
    left_kidney = summary["mean"]["left kidney"]
    assert (left_kidney["n_evaluated"], left_kidney["n_not_annotated"]) == (1, 1)
    gallbladder = summary["mean"]["gallbladder"]  # abdomen_b: empty reference vs a speck -> 0, not NaN
    assert (gallbladder["n_evaluated"], gallbladder["n_dice"], gallbladder["dice"]) == (2, 2, 0.5)
    detection = summary["detection"]["gallbladder"]
    assert (detection["true_positives"], detection["true_negatives"], detection["false_positives"]) == (1, 1, 0)
    assert detection["harmonic_mean"] == 1.0

    csv_lines = (out / "metrics_per_case.csv").read_text(encoding="utf-8").splitlines()
    assert csv_lines[0].startswith("case,prompt,kind,targets,status,dice,nsd")
    assert len(csv_lines) == 1 + 2 * len(TEXT_PROMPTS)
    assert any(line.startswith("abdomen_b,left kidney,label,kidney_left,not_annotated,nan,nan") for line in csv_lines)
    markdown = (out / "summary.md").read_text(encoding="utf-8")
    assert "| gallbladder | 1 | 0 | 1 | 0 | 100.00 | 100.00 | 100.00 |" in markdown
    assert (out / "mean_dsc_nsd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp*"))


def test_prompt_set_file_evaluates_unions_of_labels(dataset):
    root, masks, _, _ = dataset
    summary = evaluate_folder(root / "labels", root / "pred", root / "dataset.json", root / "out_merged",
                              prompt_set=root / "merged.json", num_processes=1)
    assert summary["settings"]["prompt_set"] == "merged"
    renal = summary["mean"]["renal organs"]
    assert (renal["dice"], renal["nsd"], renal["n_evaluated"], renal["n_not_annotated"]) == (1.0, 1.0, 1, 1)
    assert summary["per_case"][0]["targets"] == ["kidney_left", "kidney_right"]
    assert summary["mean"]["hepatic system"]["dice"] == pytest.approx(
        dice_coefficient(masks["abdomen_a"]["liver"], ndimage.binary_erosion(masks["abdomen_a"]["liver"])))
    assert summary["detection"] == {}


@pytest.mark.skipif(shutil.which("nnUNetv2_openvocab_evaluate") is None, reason="package not pip-installed")
def test_installed_console_script_with_worker_processes(dataset):
    root, _, _, _ = dataset
    out = root / "out_script"
    result = subprocess.run(
        ["nnUNetv2_openvocab_evaluate", "-ref", str(root / "labels"), "-pred", str(root / "pred"),
         "-dj", str(root / "dataset.json"), "-o", str(out), "--prompts-file", str(root / "merged.json"),
         "--tolerance-mm", "3", "-np", "2"], capture_output=True, encoding="utf-8", errors="replace", timeout=120)
    assert result.returncode == 0, result.stderr
    assert _strict_json(out / "summary.json")["mean"]["hepatic system"]["nsd"] > 0.99  # eroded by 3 mm


def test_missing_predictions_fail_unless_chill(dataset, tmp_path):
    root, _, _, _ = dataset
    partial = tmp_path / "pred"
    shutil.copytree(root / "pred", partial)
    (partial / prompt_file_name("abdomen_b", "spleen")).unlink()
    with pytest.raises(FileNotFoundError, match="abdomen_b_spleen.nii.gz.*--chill"):
        evaluate_folder(root / "labels", partial, root / "dataset.json", num_processes=1)
    summary = evaluate_folder(root / "labels", partial, root / "dataset.json", num_processes=1, allow_missing=True)
    assert summary["mean"]["spleen"]["n_missing_prediction"] == 1
    assert summary["mean"]["spleen"]["n_evaluated"] == 1


def test_geometry_mismatch_and_label_map_predictions_are_refused(dataset, tmp_path):
    root, masks, io, properties = dataset
    bad = tmp_path / "pred"
    shutil.copytree(root / "pred", bad)
    shifted = {**properties, "sitk_stuff": {**properties["sitk_stuff"], "spacing": (3.0, 3.0, 2.5)}}
    _write(io, masks["abdomen_a"]["spleen"], bad / "abdomen_a_spleen.nii.gz", shifted)
    with pytest.raises(ValueError, match=r"abdomen_a_spleen.nii.gz does not match the geometry.*spacing"):
        evaluate_folder(root / "labels", bad, root / "dataset.json", num_processes=1)
    _write(io, masks["abdomen_a"]["spleen"] * 2, bad / "abdomen_a_spleen.nii.gz", properties)
    with pytest.raises(ValueError, match="values other than 0 and 1"):
        evaluate_folder(root / "labels", bad, root / "dataset.json", num_processes=1)


def test_bad_inputs_exit_with_a_clear_message(dataset, tmp_path):
    root, _, _, _ = dataset
    not_json = tmp_path / "set.json"
    not_json.write_text("{prompts: [")
    common = ["-ref", str(root / "labels"), "-pred", str(root / "pred"), "-dj", str(root / "dataset.json"),
              "-o", str(tmp_path / "out"), "-np", "1"]
    with pytest.raises(SystemExit, match="set.json: not valid JSON"):
        main(common + ["--prompts-file", str(not_json)])
    unknown_target = tmp_path / "unknown.json"
    unknown_target.write_text(json.dumps({"prompts": [{"prompt": "kidneys", "targets": ["kidneys"]}]}))
    with pytest.raises(SystemExit, match=r"prompts\[0\]\]\.targets: unknown label"):
        main(common + ["--prompts-file", str(unknown_target)])
    with pytest.raises(SystemExit, match="not among the evaluated prompts"):
        main(common + ["--detection-prompts", "liver tumour"])
    truncated = tmp_path / "pred"
    shutil.copytree(root / "pred", truncated)
    spleen = truncated / prompt_file_name("abdomen_a", "spleen")
    spleen.write_bytes(spleen.read_bytes()[:-200])
    with pytest.raises(SystemExit, match="abdomen_a_spleen.nii.gz as an image.*truncated"):
        main([*common[:2], "-pred", str(truncated), *common[4:]])
    assert not (tmp_path / "out").exists()


def test_ignore_label_voxels_are_removed_from_predictions(dataset, tmp_path):
    root, masks, io, properties = dataset
    spleen = masks["abdomen_a"]["spleen"]
    label_map = spleen.astype(np.uint8) * LABELS["spleen"]
    label_map[: spleen.shape[0] // 2][spleen[: spleen.shape[0] // 2]] = 6  # upper half of the spleen unannotated
    (tmp_path / "labels").mkdir()
    _write(io, label_map, tmp_path / "labels" / "abdomen_a.nii.gz", properties)
    dataset_json = {"labels": {"background": 0, "spleen": 2, "ignore": 6}, "file_ending": ".nii.gz",
                    "text_prompts": {"spleen": ["spleen"]}}
    summary = evaluate_folder(tmp_path / "labels", root / "pred", dataset_json, num_processes=1)
    assert [p["prompt"] for p in summary["prompts"]] == ["spleen"]
    assert summary["mean"]["spleen"]["dice"] == 1.0  # the full-spleen prediction, minus ignored voxels
