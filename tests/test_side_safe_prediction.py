"""With the model trained in the test session, on the bundled CT as is, flipped (array and direction cosines
mirrored: the same patient) and re-oriented (direction cosines mirrored, voxels unchanged: the array's left is
now the patient's right): no prompt that names a side gets a mask whose majority lies on the patient's other side,
whatever its route, and the prompt report and --statistics state each check."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_openvocab.example_dataset import EXAMPLE_CT
from nnunetv2_openvocab.inference.outputs.case_outputs import OutputOptions
from nnunetv2_openvocab.inference.patient_side import EMPTIED, PASSED, TRIMMED
from nnunetv2_openvocab.inference.predictor import OpenVocabPredictor
from nnunetv2_openvocab.prompts.normalisation import prompt_side
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name
from patient_geometry import flipped, majority_on_other_side, reoriented

SIDED_PROMPTS = ["left kidney", "right kidney", "kidney on the left side", "right-sided kidney", "dextral kidney",
                 "L kidney", "left lung", "right femur", "left gluteus maximus", "kidney situated on the right"]
PROMPTS = [*SIDED_PROMPTS, "both kidneys", "liver"]
CASES = {"asis": lambda image: image, "flipped": flipped, "reoriented": reoriented}


@pytest.fixture(scope="module")
def predicted(trained_openvocab_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("sides")
    (root / "in").mkdir()
    image = sitk.ReadImage(str(EXAMPLE_CT))
    for case, transform in CASES.items():
        sitk.WriteImage(transform(image), str(root / "in" / f"{case}_0000.nii.gz"))
    predictor = OpenVocabPredictor(1.0, use_mirroring=False, show_progress=False).initialize_from_trained_model_folder(
        trained_openvocab_model.model_folder, ("all",))
    run = predictor.predict_from_files(root / "in", root / "out", prompts=PROMPTS,
                                       options=OutputOptions(statistics=True))
    return root / "out", run


def read(out, case, prompt):
    image = sitk.ReadImage(str(out / prompt_file_name(case, prompt)))
    return image, sitk.GetArrayFromImage(image)


@pytest.mark.parametrize("case", list(CASES))
def test_no_sided_answer_lies_mostly_on_the_other_side(predicted, case):
    out, _ = predicted
    for prompt in SIDED_PROMPTS:
        image, mask = read(out, case, prompt)
        assert not majority_on_other_side(image, mask, prompt_side(prompt)), (case, prompt, int(mask.sum()))


def test_the_side_follows_the_patient_not_the_array(predicted):
    """Flipping array and direction together leaves the patient as it was: the checks pass on the learnt kidneys.
    Re-orienting moves the patient's sides across the array the model reads: its kidney answers are emptied."""
    out, run = predicted
    checks = run.report.side_checks
    for prompt in ("left kidney", "right kidney", "dextral kidney"):
        assert checks["asis"][prompt].status in (PASSED, TRIMMED), checks["asis"][prompt]
        assert checks["reoriented"][prompt].status == EMPTIED, checks["reoriented"][prompt]
        assert not read(out, "reoriented", prompt)[1].any()
        assert run.report.presence["reoriented"][prompt].status == "absent"
    assert read(out, "asis", "left kidney")[1].sum() > 1000  # the check does not empty a correct answer


def test_report_and_statistics_state_the_check(predicted):
    out, run = predicted
    assert set(run.report.side_checks["asis"]) == set(SIDED_PROMPTS)  # unsided prompts get no check
    markdown = (out / "prompt_report.md").read_text(encoding="utf-8")
    assert "## Side check" in markdown and "| reoriented | left kidney | left | emptied |" in markdown
    saved = json.loads((out / "prompt_report.json").read_text(encoding="utf-8"))
    assert saved["side_checks"]["reoriented"]["right kidney"]["status"] == EMPTIED
    statistics = json.loads((out / "statistics" / "reoriented.json").read_text(encoding="utf-8"))
    assert statistics["prompts"]["left kidney"]["side_check"]["status"] == EMPTIED
    assert "side_check" not in statistics["prompts"]["liver"]
    assert np.isclose(statistics["prompts"]["left kidney"]["voxels"], 0)
