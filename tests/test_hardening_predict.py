"""Issue 11 §1, §2, §4, §5, §7, §8 through the real predict command (its main(), and subprocesses where a
file-size limit or the stock nnUNetv2_train is needed), with the model trained in the test session."""
from __future__ import annotations

import json
import resource
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_openvocab.atomic_files import is_complete_file
from nnunetv2_openvocab.example_dataset import EXAMPLE_CT
from nnunetv2_openvocab.commands.predict import main
from nnunetv2_openvocab.inference.outputs.run_settings import SETTINGS_FILE
from test_hardening_commands import exits_with_one_line, one_line_error, poison

PROGRAM = "nnUNetv2_openvocab_predict"
FAST = ["-f", "all", "--disable_tta", "-device", "cpu", "-step_size", "1", "--disable_progress_bar"]


@pytest.fixture(scope="module")
def slab(tmp_path_factory) -> Path:
    """48 axial slices of the real CT: 9 tiles, a few seconds per prediction."""
    path = tmp_path_factory.mktemp("slab") / "abdomen_0000.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(EXAMPLE_CT))[:, :, 60:108], str(path))
    return path


def predict(model, *arguments: str) -> list:
    return [*arguments, "-m", str(model.model_folder), *FAST]


def files_under(folder: Path) -> set:
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}


# ---- §1 case names -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case, words", [
    ("../../escaped", "not a plain file name"), ("/tmp/h11_escaped", "not a plain file name"),
    (".hidden", "not a plain file name"), ("a\u0000b", "not a plain file name"), ("c" * 242, "too long"),
])
def test_unsafe_case_names_are_refused_before_any_prediction(trained_openvocab_model, slab, tmp_path, capsys,
                                                             case, words):
    shutil.copyfile(slab, tmp_path / "ct_0000.nii.gz")
    jobs = tmp_path / "jobs" / "jobs.json"
    jobs.parent.mkdir()
    jobs.write_text(json.dumps({"jobs": [{"image": "../ct_0000.nii.gz", "prompts": ["spleen"]},
                                         {"image": "../ct_0000.nii.gz", "case": case, "prompts": ["liver"]}]}))
    before = files_under(tmp_path)
    line = exits_with_one_line(main, predict(trained_openvocab_model, "--prompts-file", str(jobs), "-o",
                                             str(tmp_path / "jobs" / "out")), capsys, PROGRAM)
    assert words in line
    assert files_under(tmp_path) == before and not Path("/tmp/h11_escaped_liver.nii.gz").exists()


def test_longest_legal_case_name_predicts(trained_openvocab_model, slab, tmp_path):
    """'<case>_liver.nii.gz' of 241 bytes: with its temporary name 255 bytes, the limit."""
    case = "c" * (241 - len("_liver.nii.gz"))
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps({"jobs": [{"image": str(slab), "case": case, "prompts": ["liver"]}]}))
    main(predict(trained_openvocab_model, "--prompts-file", str(jobs), "-o", str(tmp_path / "out")))
    assert is_complete_file(tmp_path / "out" / f"{case}_liver.nii.gz")


# ---- §2 failed writes never look like success --------------------------------------------------------------------
def run_with_file_size_limit(model, limit_bytes: int, cache: Path, *arguments: str) -> subprocess.CompletedProcess:
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([PROGRAM, *predict(model, *arguments)], preexec_fn=limit, capture_output=True,
                          encoding="utf-8", errors="replace", timeout=600,
                          env={**model.folders.env, "nnUNet_openvocab_cache": str(cache)})


def test_file_size_limit_exits_non_zero_and_a_rerun_completes(trained_openvocab_model, slab, tmp_path, capsys,
                                                              monkeypatch):
    model = trained_openvocab_model
    arguments = ("-i", str(slab), "--prompts", "liver", "spleen", "--statistics")
    cache = tmp_path / "cache"
    monkeypatch.setenv("nnUNet_openvocab_cache", str(cache))
    main(predict(model, *arguments, "-o", str(tmp_path / "reference")))
    reference = {p: (tmp_path / "reference" / p).read_bytes() for p in files_under(tmp_path / "reference")}
    masks = [p for p in reference if p.name.endswith(".nii.gz")]
    limit = max(len(data) for p, data in reference.items() if p not in masks) + 1
    assert min(len(reference[p]) for p in masks) > limit  # the limit lets the reports through, not the masks

    # an empty cache under a 1 KiB limit: the first embedding entry cannot be written, and none lands truncated
    # (a prompt outside the training prompts, whose embedding is not stored in the checkpoint)
    empty_cache = tmp_path / "empty_cache"
    result = run_with_file_size_limit(model, 1024, empty_cache, "-i", str(slab), "--prompts", "banana",
                                      "-o", str(tmp_path / "tiny"))
    assert result.returncode == 1 and ".npy" in one_line_error(result.stderr, PROGRAM)
    assert not [p for p in empty_cache.rglob("*") if p.is_file()]

    output = tmp_path / "limited"
    result = run_with_file_size_limit(model, limit, cache, *arguments, "-o", str(output))
    assert result.returncode == 1 and "_liver.nii.gz" in one_line_error(result.stderr, PROGRAM)
    written = [output / p for p in files_under(output)]
    assert written and all(is_complete_file(p) for p in written)  # no zero-byte or truncated file, no temp file
    assert not [p for p in written if p.name.startswith(".")]

    (output / "abdomen_liver.nii.gz").write_bytes(b"")  # what the old writer left: must not count as done
    main(predict(model, *arguments, "-o", str(output), "--continue_prediction"))
    assert "skipped" not in capsys.readouterr().out
    assert {p: (output / p).read_bytes() for p in files_under(output)} == reference


# ---- §4 output folder, poisoned checkpoints ----------------------------------------------------------------------
def test_output_folder_that_is_a_file_or_inside_the_input_is_refused(trained_openvocab_model, slab, tmp_path, capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copyfile(slab, inputs / "abdomen_0000.nii.gz")
    (tmp_path / "taken").write_text("x")
    for output, words in ((tmp_path / "taken", "is a file"), (inputs, "inside the input folder"),
                          (inputs / "predictions", "inside the input folder")):
        line = exits_with_one_line(main, predict(trained_openvocab_model, "-i", str(inputs), "-o", str(output)),
                                   capsys, PROGRAM)
        assert words in line
    assert sorted(p.name for p in inputs.iterdir()) == ["abdomen_0000.nii.gz"]


def test_poisoned_checkpoint_is_refused_by_predict_and_by_our_trainer(trained_openvocab_model, slab, tmp_path,
                                                                      capsys):
    model = trained_openvocab_model
    results = tmp_path / "results"
    copy = results / model.model_folder.relative_to(model.folders.results)
    shutil.copytree(model.model_folder, copy)
    marker = tmp_path / "executed"
    checkpoint = copy / "fold_all" / "checkpoint_final.pth"
    poison(checkpoint, marker, {"network_weights": {}})
    line = exits_with_one_line(main, ["-i", str(slab), "-o", str(tmp_path / "out"), "-m", str(copy), *FAST], capsys,
                               PROGRAM)
    assert f"{checkpoint} was refused" in line and "arbitrary code" in line
    # nnU-Net's --val goes through the trainer's load_checkpoint, which ours reads weights-only
    dataset_id, configuration = model.dataset_folder.name[7:10], "3d_fullres"
    trainer, plans = copy.name.split("__")[:2]
    result = subprocess.run(["nnUNetv2_train", dataset_id, configuration, "all", "-tr", trainer, "-p", plans, "--val",
                             "-device", "cpu"], capture_output=True, encoding="utf-8", errors="replace", timeout=600,
                            env={**model.folders.env, "nnUNet_results": str(results)})
    assert result.returncode != 0 and f"{checkpoint} was refused" in result.stderr
    assert not marker.exists()


# ---- §5 images that cannot be segmented ----------------------------------------------------------------------------
def _with_nan(ct: sitk.Image) -> sitk.Image:
    array = sitk.GetArrayFromImage(ct).astype(np.float32)
    array[10:20] = np.nan
    return _like(array, ct)


def _all_nan(ct: sitk.Image) -> sitk.Image:
    return _like(np.full(sitk.GetArrayFromImage(ct).shape, np.nan, np.float32), ct)


def _constant(ct: sitk.Image) -> sitk.Image:
    return _like(np.zeros(sitk.GetArrayFromImage(ct).shape, np.int16), ct)


def _two_d(ct: sitk.Image) -> sitk.Image:
    return ct[:, :, 20]


def _like(array: np.ndarray, ct: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(ct)
    return image


@pytest.mark.parametrize("make_image, words", [
    (_with_nan, "NaN or Inf voxels"), (_all_nan, "NaN or Inf voxels"), (_constant, "is constant"),
    (_two_d, "is a 2D image"),
])
def test_nan_constant_and_2d_images_are_refused(trained_openvocab_model, slab, tmp_path, capsys, make_image, words):
    image = tmp_path / "bad_0000.nii.gz"
    sitk.WriteImage(make_image(sitk.ReadImage(str(slab))), str(image))
    line = exits_with_one_line(main, predict(trained_openvocab_model, "-i", str(image), "-o", str(tmp_path / "out")),
                               capsys, PROGRAM)
    assert str(image) in line and words in line
    assert not list(tmp_path.glob("out/*.nii.gz"))


# ---- §7 two runs into one output folder; §2 stale temporary files ------------------------------------------------
def test_two_runs_share_one_output_folder(trained_openvocab_model, slab, tmp_path, capsys):
    output = tmp_path / "out"
    output.mkdir()
    stale, foreign = output / ".upper_liver.abcd1234.tmp.nii.gz", output / ".notes.tmp.nii.gz"
    stale.write_bytes(b"killed mid-write")
    foreign.write_bytes(b"not ours")
    shutil.copyfile(slab, tmp_path / "upper_0000.nii.gz")
    shutil.copyfile(slab, tmp_path / "lower_0000.nii.gz")
    main(predict(trained_openvocab_model, "-i", str(tmp_path / "upper_0000.nii.gz"), "-o", str(output),
                 "--prompts", "liver"))
    main(predict(trained_openvocab_model, "-i", str(tmp_path / "lower_0000.nii.gz"), "-o", str(output),
                 "--prompts", "spleen"))
    settings = json.loads((output / SETTINGS_FILE).read_text(encoding="utf-8"))
    assert {case: entry["prompts"] for case, entry in settings["cases"].items()} == {"upper": ["liver"],
                                                                                     "lower": ["spleen"]}
    report = json.loads((output / "prompt_report.json").read_text(encoding="utf-8"))
    assert {"liver", "spleen"} <= set(json.dumps(report).split('"'))
    assert not stale.exists() and foreign.exists()  # only our own temporary names are removed
    line = exits_with_one_line(main, predict(trained_openvocab_model, "-i", str(tmp_path / "lower_0000.nii.gz"),
                                             "-o", str(output), "--prompts", "spleen") + ["-step_size", "0.5"],
                               capsys, PROGRAM)
    assert "tile_step_size" in line and "new -o" in line
