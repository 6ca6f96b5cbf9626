"""Tables IX/X: a model evaluated on another dataset's labels without fine-tuning. The mapping rules on made-up
label lists, the generated commands, then the smoke-scale commands themselves on FLARE22 and SegTHOR replicas of
the bundled CT (converted by ``nnUNetv2_openvocab_convert``) with the session's trained model; the scores are
checked against a Dice computed here from the written masks."""
from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_openvocab.evaluation.transfer_mapping import (LEARNT, NO_STRUCTURE, NOT_LEARNT, PARTS_LEARNT,
                                                            map_labels, transfer_prompt_set)
from nnunetv2_openvocab.evaluation.transfer_tables import (PAPER_MODEL, build_paper_table, prepare_smoke_inputs,
                                                           transfer_commands)
from nnunetv2_openvocab.example_dataset import EXAMPLE_SEGMENTATION
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name

HEART_PARTS = ["heart_myocardium", "heart_atrium_left", "heart_atrium_right", "heart_ventricle_left",
               "heart_ventricle_right"]
# the challenges' published label values (FLARE22: 1 liver, 2 right kidney, ..., 13 left kidney; SegTHOR: 4 aorta)
LEARNT_BY_THE_TEST_MODEL = {"IX": {"liver": 1, "kidney_right": 2, "spleen": 3, "aorta": 5, "kidney_left": 13},
                            "X": {"aorta": 4}}
UNMAPPABLE = {"IX": {"pancreas", "inferior_vena_cava", "adrenal_gland_right", "adrenal_gland_left", "gallbladder",
                     "esophagus", "stomach", "duodenum"},
              "X": {"esophagus", "heart", "trachea"}}


def labels(*names):
    return {"labels": {"background": 0, **{name: value for value, name in enumerate(names, start=1)}}}


def test_labels_map_by_canonical_name_and_heart_by_its_learnt_parts():
    target = {**labels("heart", "Aorta", "trachea", "tumour_bed_of_unknown_origin"),
              "text_prompts": {"Aorta": ["aorta"]}}
    mappings = {m.label: m for m in map_labels(target, labels("aorta", *HEART_PARTS))}
    assert [m.label for m in mappings.values()] == ["heart", "Aorta", "trachea", "tumour_bed_of_unknown_origin"]
    assert (mappings["heart"].status, mappings["heart"].prompt) == (PARTS_LEARNT, "heart")
    assert list(mappings["heart"].model_labels) == HEART_PARTS
    assert (mappings["Aorta"].status, mappings["Aorta"].structure, mappings["Aorta"].prompt) == (LEARNT, "aorta",
                                                                                                 "aorta")
    assert mappings["trachea"].status == NOT_LEARNT and mappings["trachea"].prompt is None
    assert mappings["tumour_bed_of_unknown_origin"].status == NO_STRUCTURE
    prompt_set = transfer_prompt_set(list(mappings.values()), "target")
    assert [(p["prompt"], p["targets"]) for p in prompt_set["prompts"]] == [("heart", ["heart"]),
                                                                            ("aorta", ["Aorta"])]
    with pytest.raises(ValueError, match="No label of target maps"):
        transfer_prompt_set(map_labels(labels("trachea"), labels("aorta")), "target")


def test_commands_convert_the_target_then_evaluate_the_totalsegmentator_model(tmp_path):
    convert, evaluate = transfer_commands("X", "paper", "out")
    assert convert == ["nnUNetv2_openvocab_convert", "segthor", "-i", "SegTHOR/train", "-d", "502", "-o",
                       "$nnUNet_raw"]
    assert evaluate[:3] == ["nnUNetv2_openvocab_eval_transfer", "-m", PAPER_MODEL]
    assert evaluate[evaluate.index("-dj") + 1] == "$nnUNet_raw/Dataset502_SegTHOR/dataset.json"
    assert "-device" not in evaluate and evaluate[evaluate.index("--paper-table") + 1] == "X"
    smoke = transfer_commands("IX", "smoke", tmp_path, "MODEL")
    assert smoke[0][:4] == ["nnUNetv2_openvocab_convert", "flare22", "-i", str(tmp_path / "native_flare22")]
    assert smoke[1][smoke[1].index("-m") + 1] == "MODEL" and "cpu" in smoke[1]
    with pytest.raises(ValueError, match="model"):
        transfer_commands("IX", "smoke", tmp_path)
    with pytest.raises(ValueError, match="not a transfer table"):
        transfer_commands("VIII", "paper", tmp_path)


def run(argv):
    """Run a generated command in this process (its console script is the module of the same name)."""
    importlib.import_module("nnunetv2_openvocab.commands." + argv[0].replace("nnUNetv2_openvocab_", "")).main(argv[1:])


@pytest.fixture(scope="module")
def smoke_runs(trained_openvocab_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("transfer")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in trained_openvocab_model.folders.env.items():
            patch.setenv(key, value)
        for table in ("IX", "X"):
            prepare_smoke_inputs(table, out)
            for command in transfer_commands(table, "smoke", out, trained_openvocab_model.model_folder):
                run(command)
    return out


@pytest.mark.parametrize("table", ["IX", "X"])
def test_smoke_run_maps_scores_and_lays_out_the_paper_table(smoke_runs, table):
    folder = smoke_runs / f"table_{table}"
    summary = json.loads((folder / "transfer_summary.json").read_text(encoding="utf-8"))
    rows = {row["label"]: row for row in summary["labels"]}
    assert {label for label, row in rows.items() if row["mappable"]} == set(LEARNT_BY_THE_TEST_MODEL[table])
    assert {row["label"] for row in summary["unmappable"]} == UNMAPPABLE[table]
    assert all(row["status"] == NOT_LEARNT for row in summary["unmappable"])

    native = next(smoke_runs.glob("native_flare22/labels/*.nii.gz" if table == "IX" else
                                  "native_segthor/Patient_01/GT.nii.gz"))
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(native)))  # the challenge's file as written
    bundled = sitk.GetArrayFromImage(sitk.ReadImage(str(EXAMPLE_SEGMENTATION)))[64:112]
    assert np.array_equal(reference == LEARNT_BY_THE_TEST_MODEL[table]["aorta"], bundled == 52)  # TotalSeg's aorta
    case = next((folder / "predictions").glob("*_aorta.nii.gz")).name[: -len("_aorta.nii.gz")]
    for label, value in LEARNT_BY_THE_TEST_MODEL[table].items():
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "predictions" /
                                                         prompt_file_name(case, rows[label]["prompt"]))))
        truth = reference == value
        dice = 2 * np.logical_and(mask > 0, truth).sum() / ((mask > 0).sum() + truth.sum())
        assert rows[label]["dice"] == pytest.approx(dice, abs=1e-6) and dice > 0.5, label

    built = build_paper_table(table, folder)
    assert built["header"][0] == "Method" and built["header"][-1] == "Avg"
    assert len(built["header"]) == 2 + {"IX": 13, "X": 4}[table]
    assert [row[0] for row in built["rows"]] == ["CLIP-Driven (paper)", "SAT-Pro (paper)", "CT-CLIP (paper)",
                                                 "nnUNet (paper)", "OpenVocabCT (paper)", "OpenVocabCT (this run)"]
    ours = dict(zip(built["header"], built["rows"][-1]))
    assert ours["Aorta"] == f"{100 * rows['aorta']['dice']:.1f}"
    assert sum(cell == "unmappable" for cell in built["rows"][-1]) == len(UNMAPPABLE[table])
    markdown = (folder / f"table_{table}.md").read_text(encoding="utf-8")
    assert markdown.startswith(f"Table {table}.") and "| OpenVocabCT (paper) |" in markdown
    assert (folder / f"table_{table}.csv").read_text(encoding="utf-8").splitlines()[0] == ",".join(built["header"])


def test_bad_target_or_nothing_to_map_is_one_line(trained_openvocab_model, tmp_path, capsys):
    common = ["-m", str(trained_openvocab_model.model_folder), "-i", str(tmp_path), "-ref", str(tmp_path),
              "-o", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as missing:
        run(["nnUNetv2_openvocab_eval_transfer", *common, "-dj", str(tmp_path / "nowhere.json")])
    assert str(missing.value.code).startswith("nnUNetv2_openvocab_eval_transfer: error:") and \
        "nowhere.json" in str(missing.value.code)
    (tmp_path / "thorax.json").write_text(json.dumps({**labels("trachea"), "file_ending": ".nii.gz"}))
    with pytest.raises(SystemExit) as nothing:
        run(["nnUNetv2_openvocab_eval_transfer", *common, "-dj", str(tmp_path / "thorax.json")])
    message = str(nothing.value.code)
    assert "No label of" in message and "'trachea', 'not learnt by the model'" in message
    assert "\n" not in message and not list((tmp_path / "out").glob("*"))
