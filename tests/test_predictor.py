"""OpenVocabPredictor: sliding-window pieces on synthetic data, then the Python API on the real CT with the
model trained in the test session (conftest ``trained_openvocab_model``)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from nnunetv2.preprocessing.resampling.default_resampling import (determine_do_sep_z_and_axis,
                                                                  resample_data_or_seg_to_shape)
from scipy.ndimage import gaussian_filter

from nnunetv2_openvocab.example_dataset import EXAMPLE_CT
from nnunetv2_openvocab.inference.outputs.combined_map import CombinedLabelMap
from nnunetv2_openvocab.inference.original_geometry import SeparableThresholdResampler, positive_boxes
from nnunetv2_openvocab.inference.predictor import OpenVocabPredictor
from nnunetv2_openvocab.inference import prompt_readout
from nnunetv2_openvocab.inference.prompt_readout import FeatureReadout, LogitReadout, cede_to_rivals, choose_readout
from nnunetv2_openvocab.inference.sliding_window import SlidingWindow, mirror_combinations, tile_slicers
from nnunetv2_openvocab.network.openvocab_stunet import OpenVocabSTUNet

SEEN_PROMPTS = ["liver", "spleen", "left kidney", "right kidney", "aorta", "L3 vertebra"]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


def test_tiles_cover_the_image_and_mirroring_lists_every_flip():
    slicers = tile_slicers((70, 48, 100), (48, 48, 48), 0.5)
    covered = np.zeros((70, 48, 100), bool)
    for s in slicers:
        covered[s] = True
    assert covered.all() and len(slicers) == 2 * 1 * 4  # nnU-Net: ceil((size - patch) / (patch / 2)) + 1 per axis
    assert mirror_combinations(None) == [()]
    assert len(mirror_combinations((0, 1, 2))) == 8 and (2, 3, 4) in mirror_combinations((0, 1, 2))


def test_blending_a_constant_gives_the_constant_back_whatever_the_flips():
    window = SlidingWindow((16, 16, 16), 0.5, mirror_axes=(0, 1, 2), show_progress=False)
    data = torch.zeros(1, 20, 37, 9)  # smaller than the patch along one axis: padded, then unpadded
    padded, volume = window.start(data, num_channels=2)
    window.accumulate(volume, padded, lambda tile: torch.stack([torch.full(tile.shape[2:], 3.0),
                                                               torch.full(tile.shape[2:], -1.5)]))
    assert volume.channel(0).shape == (20, 37, 9)
    # nnU-Net's Gaussian (issue 25) falls to ~6e-8 at a tile's far corners, so where only such corners reach, the
    # float16 sums are subnormal, in nnU-Net's predictor too; everywhere float16 resolves them the constant is exact
    resolved = volume.weights[volume.unpad] >= 1e-4  # products >= 1.5e-4: normal float16 numbers
    assert resolved.float().mean() > 0.9
    assert torch.allclose(volume.channel(0)[resolved], torch.tensor(3.0), atol=1e-2)
    assert torch.allclose(volume.channel(1)[resolved], torch.tensor(-1.5), atol=1e-2)
    assert torch.isfinite(volume.channel(0)).all() and torch.isfinite(volume.channel(1)).all()


def _small_network(prompts: int) -> OpenVocabSTUNet:
    torch.manual_seed(0)
    network = OpenVocabSTUNet(1, prompts + 1, 16, prompts, dims=(4, 8, 8), strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2]],
                              conv_kernel_sizes=[[3, 3, 3]] * 3, depth=(1, 1, 1), deep_supervision=False)
    network.apply(network.initialize)
    return network.eval()


def test_blending_features_equals_blending_prompt_logits():
    """The head is linear in the features and blending is linear: both readouts give the same logits."""
    network = _small_network(prompts=12)
    embeddings = torch.randn(12, 16)
    data = torch.randn(1, 30, 26, 21)
    window = SlidingWindow((16, 16, 16), 0.5, mirror_axes=(0, 2), show_progress=False,
                           accumulation_dtype=torch.float32)
    logits = {}
    for readout in (LogitReadout(network, embeddings), FeatureReadout(network, embeddings)):
        padded, volume = window.start(data, readout.num_channels)
        window.accumulate(volume, padded, readout.tile_function)
        logits[type(readout)] = torch.stack([readout.prompt_logits(volume, i) for i in range(12)])
    assert torch.allclose(logits[LogitReadout], logits[FeatureReadout], atol=1e-4)
    assert isinstance(choose_readout(network, embeddings), FeatureReadout)  # 4 feature channels < 12 prompts
    assert isinstance(choose_readout(network, embeddings[:1]), LogitReadout)
    assert isinstance(choose_readout(network, embeddings, num_folds=2), LogitReadout)  # one query set per fold


def test_ceding_reads_the_rivals_only_at_the_foreground(monkeypatch):
    """cede_to_rivals gathers the rivals' logits at the query's foreground voxels, in chunks, from a padded
    volume: the same as min(l, l - strongest rival) on the whole map there; background keeps its own logits."""
    monkeypatch.setattr(prompt_readout, "VOXEL_CHUNK", 97)  # many chunks
    torch.manual_seed(0)
    network = _small_network(prompts=6)
    embeddings = torch.randn(6, 16)
    data = torch.randn(1, 30, 12, 21)  # 12 < the patch's 16: padded, so the unpadding offsets matter
    window = SlidingWindow((16, 16, 16), 0.5, show_progress=False, accumulation_dtype=torch.float32)
    for readout in (LogitReadout(network, embeddings), FeatureReadout(network, embeddings)):
        padded, volume = window.start(data, readout.num_channels)
        window.accumulate(volume, padded, readout.tile_function)
        logits = torch.stack([readout.prompt_logits(volume, i) for i in range(6)])
        shift = -float(logits.median())  # an untrained head's logits all sit below 0: centre them
        if isinstance(readout, LogitReadout):
            volume.sums += shift * volume.weights
        else:
            readout.biases = readout.biases + shift
        logits = torch.stack([readout.prompt_logits(volume, i) for i in range(6)])
        query = int((logits > 0).flatten(1).sum(1).argmax())  # the query with the most foreground
        rivals = [i for i in range(6) if i != query]
        own, strongest = logits[query], logits[rivals].amax(0)
        foreground = own > 0
        assert (foreground & (strongest > own)).any() and (foreground & (strongest < own)).any()
        expected = torch.where(foreground, torch.minimum(own, own - strongest), own)
        assert torch.allclose(cede_to_rivals(own.clone(), readout, volume, rivals), expected, atol=1e-4)


@pytest.mark.parametrize("in_shape, out_shape, network_spacing, original_spacing", [
    ((30, 34, 40), (90, 101, 121), (3, 3, 3), (1, 1, 1)),
    ((20, 60, 64), (100, 150, 160), (5, 1, 1), (1, 0.4, 0.4)),  # low-resolution axis resampled separately
    ((40, 40, 40), (23, 57, 40), (1, 1, 1), (1.7, 0.7, 1)),
])
def test_fast_threshold_resampling_equals_nnunet_resampling(in_shape, out_shape, network_spacing, original_spacing):
    logits = gaussian_filter(np.random.default_rng(0).normal(size=in_shape), 2) * 10 + 0.3
    expected = resample_data_or_seg_to_shape(logits[None], out_shape, network_spacing, original_spacing, is_seg=False,
                                             order=1, order_z=0, force_separate_z=None)[0] > 0
    separate, axis = determine_do_sep_z_and_axis(None, network_spacing, original_spacing)
    orders = [0 if separate and a == axis else 1 for a in range(3)]
    found = SeparableThresholdResampler(in_shape, out_shape, orders)(torch.from_numpy(logits).float())
    assert expected.sum() > 0 and np.array_equal(found, expected)



def test_scattered_positives_get_separate_boxes_and_the_same_mask():
    """An unlearnt prompt's few stray voxels lie far apart: each group gets its own box, and the mask still equals
    nnU-Net's resampling."""
    in_shape, out_shape = (30, 34, 40), (90, 101, 121)
    logits = np.full(in_shape, -3.7)  # values whose interpolation never lands on 0 exactly (no rounding ties)
    logits[(1, 28, 2, 27), (1, 2, 31, 30), (1, 37, 3, 36)] = 3.1  # single voxels near four corners
    logits[10:16, 5:12, 20:30] = 2.3  # and one organ-like block
    boxes = positive_boxes(logits > 0)
    covered = np.zeros(in_shape, dtype=bool)
    for low, high in boxes:
        covered[tuple(slice(a, b + 1) for a, b in zip(low, high))] = True
    assert len(boxes) == 5 and covered[logits > 0].all() and covered.sum() == 4 + 6 * 7 * 10
    expected = resample_data_or_seg_to_shape(logits[None], out_shape, (3, 3, 3), (1, 1, 1), is_seg=False, order=1,
                                             order_z=0, force_separate_z=None)[0] > 0
    found = np.zeros(out_shape, dtype=np.uint8)
    voxels = SeparableThresholdResampler(in_shape, out_shape, [1, 1, 1]).fill(torch.from_numpy(logits).float(), found)
    assert np.array_equal(found, expected) and voxels == expected.sum()  # the count the boxes report is the mask's
    assert positive_boxes(np.zeros(in_shape, dtype=bool)) == []

def test_combined_label_map_keeps_first_prompt_and_counts_overlaps():
    combined = CombinedLabelMap((4, 4, 4), ["kidney", "left kidney", "liver"])
    kidney = np.zeros((4, 4, 4), np.uint8)
    kidney[:2] = 1
    left = np.zeros_like(kidney)
    left[1:3] = 1
    combined.add(0, kidney)
    combined.add(1, left)
    combined.add(2, np.zeros_like(kidney))
    legend = combined.legend()
    assert (combined.labels[:2] == 1).all() and (combined.labels[2] == 2).all() and (combined.labels[3] == 0).all()
    assert legend["prompts"][1] == {"label": 2, "prompt": "left kidney", "mask_voxels": 32, "kept_voxels": 16,
                                    "lost_to": {"kidney": 16}}
    assert legend["labels"] == {"0": "background", "1": "kidney", "2": "left kidney", "3": "liver"}
    with pytest.raises(ValueError, match="prompt order"):
        combined.add(0, kidney)


@pytest.fixture(scope="module")
def predictor(trained_openvocab_model):
    return OpenVocabPredictor(tile_step_size=1.0, use_mirroring=False, device=torch.device("cpu"),
                              show_progress=False).initialize_from_trained_model_folder(
        trained_openvocab_model.model_folder, ("all",))


def test_predict_single_image_on_the_real_ct(predictor, trained_openvocab_model):
    assert predictor.training_prompts == SEEN_PROMPTS
    masks = predictor.predict_single_image(str(EXAMPLE_CT), ["liver", "left kidney", "renal organs", "L3 vertebra"])
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(EXAMPLE_CT)))
    assert list(masks) == ["liver", "left kidney", "renal organs", "L3 vertebra"]
    assert all(m.shape == ct.shape and m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1} for m in masks.values())
    volumes = [int(m.sum()) for m in masks.values()]
    assert min(volumes) > 0 and len({m.tobytes() for m in masks.values()}) == len(masks)  # prompts differ
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(trained_openvocab_model.dataset_folder / "labelsTr" /
                                                        "example_000.nii.gz")))
    assert dice(masks["liver"] > 0, labels == 1) > 0.5
    assert dice(masks["L3 vertebra"] > 0, labels == 6) > dice(masks["L3 vertebra"] > 0, labels == 1)


def test_embeddings_are_computed_once_per_prompt(predictor, monkeypatch):
    predictor.embed(["liver", "hepatic system"])
    monkeypatch.setattr(predictor.embedding_cache, "embed", lambda prompts: pytest.fail(f"re-embedded {prompts}"))
    assert predictor.embed(["hepatic system", "liver"]).shape == (2, predictor.model.spec.embedding_dim)


def test_two_identical_folds_ensemble_to_the_single_fold_result(trained_openvocab_model, tmp_path):
    model_copy = tmp_path / "model"
    shutil.copytree(trained_openvocab_model.model_folder, model_copy, ignore=shutil.ignore_patterns("validation"))
    for fold in (0, 1):
        shutil.copytree(model_copy / "fold_all", model_copy / f"fold_{fold}")
    image = trained_openvocab_model.dataset_folder / "imagesTr" / "example_001_0000.nii.gz"
    results = []
    for folds in (("all",), None):  # None: every numbered fold, here 0 and 1
        predictor = OpenVocabPredictor(1.0, False, torch.device("cpu"), show_progress=False)
        predictor.initialize_from_trained_model_folder(model_copy, folds)
        results.append(predictor.predict_single_image(image, ["liver", "spleen"]))
    assert predictor.model.folds == (0, 1)
    for prompt in ("liver", "spleen"):
        assert dice(results[0][prompt] > 0, results[1][prompt] > 0) > 0.999
