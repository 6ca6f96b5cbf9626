"""``nnUNetv2_openvocab_predict`` end to end through the real commands, on the real CT and the model trained in
the test session: outputs in the input's exact geometry (also after resampling and cropping), the optional
outputs, evaluation of the masks, resuming, per-image prompts, and bad inputs that leave nothing behind."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from matplotlib.image import imread

from nnunetv2_openvocab.example_dataset import EXAMPLE_CT
from nnunetv2_openvocab.commands.predict import main
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name

PROMPTS = ["liver", "renal organs", "left kidney", "spleen"]
FAST = ["-f", "all", "--disable_tta", "-device", "cpu", "-step_size", "1", "--disable_progress_bar"]


def geometry(image: sitk.Image):
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def resampled_and_padded(ct: sitk.Image) -> sitk.Image:
    """The CT at another, anisotropic spacing, with a zero border that nnU-Net's preprocessing crops away."""
    spacing = (2.5, 2.5, 4.0)
    size = [int(round(n * s / t)) for n, s, t in zip(ct.GetSize(), ct.GetSpacing(), spacing)]
    resampled = sitk.Resample(ct, size, sitk.Transform(), sitk.sitkLinear, ct.GetOrigin(), spacing,
                              ct.GetDirection(), -1024, ct.GetPixelID())
    return sitk.ConstantPad(resampled, (6, 0, 3), (4, 5, 0), 0)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


@pytest.fixture(scope="module")
def prediction(trained_openvocab_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("predict_command")
    inputs = root / "inputs"
    inputs.mkdir()
    ct = sitk.ReadImage(str(EXAMPLE_CT))
    shutil.copyfile(EXAMPLE_CT, inputs / "ct_0000.nii.gz")
    sitk.WriteImage(resampled_and_padded(ct), str(inputs / "ct_resampled_0000.nii.gz"))
    output = root / "out"
    result = trained_openvocab_model.folders.run(
        "nnUNetv2_openvocab_predict", "-i", str(inputs), "-o", str(output), "-m",
        str(trained_openvocab_model.model_folder), *FAST, "--prompts", *PROMPTS, "--combined", "--statistics",
        "--preview")
    return root, inputs, output, result.stdout


def test_masks_keep_the_input_geometry_exactly(prediction):
    _, inputs, output, _ = prediction
    for case in ("ct", "ct_resampled"):
        image = sitk.ReadImage(str(inputs / f"{case}_0000.nii.gz"))
        for prompt in PROMPTS:
            mask = sitk.ReadImage(str(output / prompt_file_name(case, prompt)))
            assert geometry(mask) == geometry(image), (case, prompt)
            assert mask.GetPixelID() == sitk.sitkUInt8
            assert set(np.unique(sitk.GetArrayFromImage(mask))) <= {0, 1}
        combined = sitk.ReadImage(str(output / "combined" / f"{case}.nii.gz"))
        assert geometry(combined) == geometry(image)


def test_resampled_and_cropped_input_gives_the_same_anatomy(prediction):
    _, _, output, _ = prediction
    for prompt in ("liver", "spleen"):
        original = sitk.ReadImage(str(output / prompt_file_name("ct", prompt)))
        other = sitk.ReadImage(str(output / prompt_file_name("ct_resampled", prompt)))
        other_array = sitk.GetArrayFromImage(other)
        assert other_array[:3].sum() == 0 and other_array[:, :, :6].sum() == 0  # the zero border stays empty
        back = sitk.Resample(other, original, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        assert dice(sitk.GetArrayFromImage(back) > 0, sitk.GetArrayFromImage(original) > 0) > 0.8


def test_prompts_give_different_masks(prediction):
    _, _, output, _ = prediction
    masks = {p: sitk.GetArrayFromImage(sitk.ReadImage(str(output / prompt_file_name("ct", p)))) for p in PROMPTS}
    assert all(m.sum() > 0 for m in masks.values())
    assert len({m.tobytes() for m in masks.values()}) == len(PROMPTS)


def test_combined_map_statistics_preview_and_report(prediction):
    _, _, output, stdout = prediction
    legend = json.loads((output / "combined" / "ct.json").read_text(encoding="utf-8"))
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(output / "combined" / "ct.nii.gz")))
    assert legend["labels"] == {"0": "background", **{str(i + 1): p for i, p in enumerate(PROMPTS)}}
    for entry in legend["prompts"]:
        assert entry["kept_voxels"] == int((labels == entry["label"]).sum())
        assert entry["kept_voxels"] + sum(entry["lost_to"].values()) == entry["mask_voxels"]
    statistics = json.loads((output / "statistics" / "ct.json").read_text(encoding="utf-8"))
    liver = statistics["prompts"]["liver"]
    assert statistics["voxel_volume_ml"] == pytest.approx(0.027)
    assert liver["volume_ml"] == pytest.approx(liver["voxels"] * 0.027) and -100 < liver["mean_hu"] < 300
    assert imread(output / "previews" / "ct.png").shape[0] > 300
    report = json.loads((output / "prompt_report.json").read_text(encoding="utf-8"))
    assert {p["prompt"]: p["status"] for p in report["prompts"]}["renal organs"] == "near"
    assert "'renal organs': NEAR" in stdout and "route union [kidney_" in stdout  # grounded: no side warning
    assert (output / "prompt_report.md").is_file() and (output / "prediction_settings.json").is_file()
    assert not list(output.rglob(".*"))  # no temporary file left behind


def test_masks_evaluate_with_the_evaluation_command(prediction, trained_openvocab_model):
    root, _, output, _ = prediction
    reference = root / "reference"
    reference.mkdir()
    shutil.copyfile(trained_openvocab_model.dataset_folder / "labelsTr" / "example_000.nii.gz", reference / "ct.nii.gz")
    prompt_set = root / "set.json"
    prompt_set.write_text(json.dumps({"name": "check", "prompts": [
        {"prompt": "liver", "targets": ["liver"]},
        {"prompt": "renal organs", "targets": ["kidney_left", "kidney_right"], "kind": "synonym"}]}))
    trained_openvocab_model.folders.run(
        "nnUNetv2_openvocab_evaluate", "-ref", str(reference), "-pred", str(output), "-np", "1",
        "-dj", str(trained_openvocab_model.dataset_folder / "dataset.json"), "-o", str(root / "evaluation"),
        "--prompts-file", str(prompt_set))
    summary = json.loads((root / "evaluation" / "summary.json").read_text(encoding="utf-8"))
    assert summary["mean"]["liver"]["dice"] > 0.5


def test_continue_prediction_skips_finished_cases(prediction, trained_openvocab_model, capsys):
    _, inputs, output, _ = prediction
    before = {p: p.stat().st_mtime_ns for p in output.glob("*.nii.gz")}
    main(["-i", str(inputs), "-o", str(output), "-m", str(trained_openvocab_model.model_folder), *FAST,
          "--prompts", *PROMPTS, "--combined", "--statistics", "--preview", "--continue_prediction"])
    assert "skipped 2 finished case(s)" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime_ns for p in output.glob("*.nii.gz")}
    report = json.loads((output / "prompt_report.json").read_text(encoding="utf-8"))
    assert sorted(report["presence"]) == ["ct", "ct_resampled"]  # the skipped cases' results stay in the report
    assert report["presence"]["ct"]["liver"]["status"] == "present"


def test_prompts_file_gives_per_image_prompts(trained_openvocab_model, tmp_path):
    ct = sitk.ReadImage(str(EXAMPLE_CT))
    for name, first_slice in (("upper", 60), ("lower", 20)):  # 48-slice slabs: 9 tiles each
        sitk.WriteImage(ct[:, :, first_slice:first_slice + 48], str(tmp_path / f"{name}_0000.nii.gz"))
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps({"jobs": [{"image": "upper_0000.nii.gz", "prompts": ["liver"]},
                                         {"image": "lower_0000.nii.gz", "case": "pelvis"}]}))
    main(["--prompts-file", str(jobs), "-o", str(tmp_path / "out"), "-m", str(trained_openvocab_model.model_folder),
          *FAST, "--prompts", "aorta", "left kidney"])
    written = sorted(p.name for p in (tmp_path / "out").glob("*.nii.gz"))
    assert written == ["pelvis_aorta.nii.gz", "pelvis_left_kidney.nii.gz", "upper_liver.nii.gz"]


def _empty_prompt(inputs, tmp_path, model):
    return ["-i", str(inputs), "--prompts", "liver", "  "], model


def _unknown_model_folder(inputs, tmp_path, model):
    return ["-i", str(inputs)], str(tmp_path / "no_such_model")


def _truncated_nifti(inputs, tmp_path, model):
    data = EXAMPLE_CT.read_bytes()
    (inputs / "zz_bad_0000.nii.gz").write_bytes(data[: len(data) // 2])  # ITK would silently zero-fill it
    return ["-i", str(inputs)], model


def _four_d_image(inputs, tmp_path, model):
    ct = sitk.ReadImage(str(EXAMPLE_CT))
    sitk.WriteImage(sitk.JoinSeries([ct, ct]), str(inputs / "zz_bad_0000.nii.gz"))
    return ["-i", str(inputs)], model


def _prompts_file_not_json(inputs, tmp_path, model):
    (tmp_path / "jobs.json").write_text('{"jobs": [{"image": "inputs/good_0000.nii.gz",}')
    return ["--prompts-file", str(tmp_path / "jobs.json")], model


@pytest.mark.parametrize("make_case, message", [
    (_empty_prompt, "is empty"), (_unknown_model_folder, "does not exist"),
    (_truncated_nifti, "truncated or corrupt"), (_four_d_image, "is 4D"), (_prompts_file_not_json, "not valid JSON"),
])
def test_bad_inputs_fail_clearly_and_write_nothing(trained_openvocab_model, tmp_path, make_case, message):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copyfile(EXAMPLE_CT, inputs / "good_0000.nii.gz")  # a good case comes first: none of it may be written
    arguments, model = make_case(inputs, tmp_path, str(trained_openvocab_model.model_folder))
    output = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main([*arguments, "-o", str(output), "-m", model, *FAST])
    assert message in str(exit_info.value.code)
    assert not output.exists()
