"""``--save_probabilities``: per-prompt float16 maps in the original geometry, the same interpolation as the masks,
and no prompts x volume buffer (numpy allocations traced while the maps of many prompts stream out)."""
from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from nnunetv2.preprocessing.resampling.default_resampling import (determine_do_sep_z_and_axis,
                                                                  resample_data_or_seg_to_shape)
from scipy.ndimage import gaussian_filter

from nnunetv2_openvocab.example_dataset import CLASS_MAP, EXAMPLE_CT
from nnunetv2_openvocab.inference.outputs.case_outputs import OutputOptions
from nnunetv2_openvocab.inference.input_images import find_cases, read_case
from nnunetv2_openvocab.inference.original_geometry import SeparableThresholdResampler
from nnunetv2_openvocab.inference.predictor import OpenVocabPredictor
from nnunetv2_openvocab.inference.outputs.probability_files import geometry_file, probability_file
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name

PROMPTS = ["liver", "renal organs"]


@pytest.mark.parametrize("in_shape, out_shape, network_spacing, original_spacing", [
    ((30, 34, 40), (90, 101, 121), (3, 3, 3), (1, 1, 1)),
    ((20, 60, 64), (100, 150, 160), (5, 1, 1), (1, 0.4, 0.4)),  # low-resolution axis resampled separately
])
def test_fast_probabilities_equal_the_sigmoid_of_nnunet_resampling(in_shape, out_shape, network_spacing,
                                                                   original_spacing):
    logits = gaussian_filter(np.random.default_rng(0).normal(size=in_shape), 2) * 10 + 0.3
    expected = resample_data_or_seg_to_shape(logits[None], out_shape, network_spacing, original_spacing, is_seg=False,
                                             order=1, order_z=0, force_separate_z=None)[0]
    separate, axis = determine_do_sep_z_and_axis(None, network_spacing, original_spacing)
    resampler = SeparableThresholdResampler(in_shape, out_shape, [0 if separate and a == axis else 1 for a in range(3)])
    found = np.empty(out_shape, dtype=np.float16)
    resampler.fill_probabilities(torch.from_numpy(logits).float(), found)
    assert np.abs(found.astype(np.float32) - 1 / (1 + np.exp(-expected))).max() < 1e-3


@pytest.fixture(scope="module")
def predictor(trained_openvocab_model):
    return OpenVocabPredictor(tile_step_size=1.0, use_mirroring=False, device=torch.device("cpu"),
                              show_progress=False).initialize_from_trained_model_folder(
        trained_openvocab_model.model_folder, ("all",))


@pytest.fixture(scope="module")
def slab(tmp_path_factory):
    path = tmp_path_factory.mktemp("probabilities") / "slab_0000.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(EXAMPLE_CT))[:, :, 50:98], str(path))
    return path


def test_probability_maps_are_written_in_the_original_geometry(predictor, slab, tmp_path):
    predictor.predict_from_files(slab, tmp_path, PROMPTS, options=OutputOptions(save_probabilities=True))
    image = sitk.ReadImage(str(slab))
    geometry = json.loads(geometry_file(tmp_path, "slab").read_text(encoding="utf-8"))
    assert geometry["prompts"] == {p: probability_file(tmp_path, "slab", p).name for p in PROMPTS}
    assert np.allclose(geometry["sitk_stuff"]["origin"], image.GetOrigin())
    assert np.allclose(geometry["sitk_stuff"]["direction"], image.GetDirection())
    for prompt in PROMPTS:
        probabilities = np.load(probability_file(tmp_path, "slab", prompt))["probabilities"]
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / prompt_file_name("slab", prompt))))
        assert probabilities.dtype == np.float16 and probabilities.shape == mask.shape
        assert 0 <= probabilities.min() and probabilities.max() <= 1 and mask.sum() > 0
        # the same interpolated logits: only voxels within float16 rounding of 0.5 may disagree
        disagree = (probabilities > 0.5) != (mask > 0)
        assert np.all(np.abs(probabilities[disagree].astype(np.float32) - 0.5) < 1e-3)


def test_probabilities_of_many_prompts_stream_without_a_prompts_by_volume_buffer(predictor, slab):
    prompts = [name.replace("_", " ") for name in json.loads(CLASS_MAP.read_text(encoding="utf-8")).values()][:16]
    data, properties = read_case(find_cases(slab, ".nii.gz")[0], predictor.model.plans_manager.image_reader_writer_class)
    volume_bytes = data[0].size * (1 + 2)  # one uint8 mask and one float16 map
    preprocessed = predictor.preprocess(data, properties)
    predictor.embed(prompts)  # the text encoder's allocations are not what is measured
    tracemalloc.start()
    try:
        count = sum(output.probabilities is not None
                    for output in predictor.answers_from_preprocessed(preprocessed, properties, prompts, True))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == len(prompts)
    assert peak < 4 * volume_bytes < len(prompts) * volume_bytes / 2, (peak, volume_bytes)
