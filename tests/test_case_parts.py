"""nnU-Net's ``-num_parts/-part_id`` and ``-npp/-nps`` with the real command: the parts cover every case exactly once,
and background preprocessing and export write the same masks as one sequential process."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_openvocab.example_dataset import EXAMPLE_CT
from nnunetv2_openvocab.inference.background_workers import Workers
from nnunetv2_openvocab.inference.case_parts import CasePart
from nnunetv2_openvocab.commands.predict import main, run_prediction
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name

PROMPTS = ["liver", "aorta"]
CASES = ["case_a", "case_b", "case_c"]


@pytest.mark.parametrize("num_cases", [0, 1, 7, 12])
@pytest.mark.parametrize("num_parts", [1, 2, 3, 5])
def test_parts_are_disjoint_and_together_complete(num_cases, num_parts):
    cases = [f"case_{i:03d}" for i in range(num_cases)]
    parts = [CasePart(num_parts, i).select(cases) for i in range(num_parts)]
    assert sorted(c for part in parts for c in part) == cases  # every case once: complete and disjoint
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert parts == [CasePart(num_parts, i).select(cases) for i in range(num_parts)]  # deterministic


@pytest.mark.parametrize("num_parts, part_id", [(0, 0), (2, 2), (2, -1)])
def test_a_part_outside_the_range_is_refused(num_parts, part_id):
    with pytest.raises(ValueError, match="counts parts from 0"):
        CasePart(num_parts, part_id)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Three cases: 24-slice slabs of the real CT."""
    folder = tmp_path_factory.mktemp("parts")
    ct = sitk.ReadImage(str(EXAMPLE_CT))
    for index, case in enumerate(CASES):
        sitk.WriteImage(ct[:, :, 40 + 16 * index: 64 + 16 * index], str(folder / f"{case}_0000.nii.gz"))
    return folder


def _arguments(images, output, model):
    return ["-i", str(images), "-o", str(output), "-m", str(model.model_folder), "-f", "all", "--disable_tta",
            "-device", "cpu", "-step_size", "1", "--disable_progress_bar", "--prompts", *PROMPTS]


def test_parts_with_background_workers_cover_every_case_once(images, trained_openvocab_model, tmp_path):
    common = dict(model_folder=trained_openvocab_model.model_folder, inputs=images, prompts=PROMPTS, folds=["all"],
                  step_size=1.0, use_mirroring=False, show_progress=False)
    sequential = run_prediction(output_folder=tmp_path / "sequential", **common)
    parts = [run_prediction(output_folder=tmp_path / "parts", part=CasePart(2, part_id), workers=Workers(1, 1),
                            **common) for part_id in range(2)]
    assert [sorted(part.written) for part in parts] == [["case_a", "case_c"], ["case_b"]]
    assert sorted(sequential.written) == CASES
    for case in CASES:
        for prompt in PROMPTS:
            name = prompt_file_name(case, prompt)
            in_parts = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "parts" / name)))
            alone = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "sequential" / name)))
            assert np.array_equal(in_parts, alone), name


def test_command_line_parts_and_workers(images, trained_openvocab_model, tmp_path, capsys):
    main([*_arguments(images, tmp_path, trained_openvocab_model), "-num_parts", "3", "-part_id", "2", "-npp", "2",
          "-nps", "2"])
    assert sorted(p.name for p in tmp_path.glob("*.nii.gz")) == sorted(prompt_file_name("case_c", p) for p in PROMPTS)
    with pytest.raises(SystemExit, match="-part_id must be in 0..2"):
        main([*_arguments(images, tmp_path / "bad", trained_openvocab_model), "-num_parts", "3", "-part_id", "3"])
