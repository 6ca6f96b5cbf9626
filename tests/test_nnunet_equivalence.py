"""Our predictions equal nnU-Net's own predictor's for the same network (issue 25).

The session's trained model predicts the bundled real CT twice: with the stock ``nnUNetv2_predict`` (label map and
``--save_probabilities``: softmax over a zero background logit and the canonical prompts' logits, see
network/openvocab_stunet.py) and with ``nnUNetv2_openvocab_predict`` (canonical prompts, ``--grounding text``,
``--save_probabilities``: one float16 sigmoid per prompt). Both readouts (feature and logit blending) run, with
test-time mirroring off on the CT at 3 mm (the plans' spacing) and resampled to 1.5 mm (so the export back to the
original geometry is compared too), and with mirroring on a 72^3 crop of the 3 mm CT (8 tiles x 8 mirrorings
instead of 80 x 8: the model is trained without mirroring, so a copy of its checkpoint declares nnU-Net's three
mirror axes). The masks must match voxel for voxel except at near-ties, the logits within 0.02: a different
Gaussian (such as the 1/1000 floor this project once had), other tiles, padding, preprocessing or export fail it.
"""
from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from acvl_utils.cropping_and_padding.bounding_boxes import bounding_box_to_slice
from acvl_utils.cropping_and_padding.padding import pad_nd_image
from batchgenerators.utilities.file_and_folder_operations import load_pickle
from nnunetv2.inference.sliding_window_prediction import compute_gaussian, compute_steps_for_sliding_window
from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape
from scipy import ndimage

from nnunetv2_openvocab.example_dataset import EXAMPLE_CT
from nnunetv2_openvocab.commands import predict as predict_entry
from nnunetv2_openvocab.inference import predictor
from nnunetv2_openvocab.inference.outputs.probability_files import ARRAY_KEY, probability_file
from nnunetv2_openvocab.inference.prompt_readout import FeatureReadout, LogitReadout
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name
from nnunetv2_openvocab.safe_loading import torch_load_weights_only
from conftest import LEARNING_DATASET_ID, LEARNING_PLANS, LEARNING_TRAINER

NEAR_TIE = 1e-3  # logits this close to 0 or to each other may fall either way between two implementations
MAX_NEAR_TIE_SHARE = 1e-3  # of the foreground
LOGIT_TOLERANCE = 0.02
FLOAT16_RESOLUTION = 0.005  # our float16 probability "provides" a logit where rounding moves it by at most this
MIN_DICE = 0.999
# one near-tie voxel moves the Dice of a mask smaller than this by more than 1 - MIN_DICE (a structure cut by the
# crop's edge); such masks are held to the near-tie rule of test_masks_equal_nnunet_except_at_near_ties instead
MIN_VOXELS_FOR_DICE = 1000
CHECKPOINT = "checkpoint_final.pth"
CROP_1P5MM = (slice(25, 97), slice(15, 87), slice(40, 112))  # SimpleITK (x, y, z), 72^3 at 3 mm: the upper abdomen
# nnU-Net's float16 sums round every tile's weighted logit by up to 2^-11 of |l| times the summed weights, so its own
# error grows with |l| (measured against float32: 0.012 at |l| <= 4, 0.028 at |l| <= 8); compare where it is small
STOCK_LOGIT_RANGE = 4.0
STOCK_PRECISE_WEIGHT = 1e-4  # nnU-Net's float16 sums resolve logits to ~3e-4 where its summed weights reach this
READOUTS = {"feature": FeatureReadout, "logit": LogitReadout}


@dataclass
class Comparison:
    """Ours against stock for one case: per-label Dice, voxels whose decision differs, logit differences."""

    dice: Dict[str, float]  # our mask k against stock's decision l_k > 0 (sigmoid > 0.5, as ours)
    stock_voxels: Dict[str, int]  # voxels of stock's decision l_k > 0 per label
    label_map_dice: Dict[str, float]  # our mask k against stock's label map == k (its argmax)
    foreground: int  # stock's label map
    mismatches: int  # voxels of masks or label map that differ from stock's
    near_tie_mismatches: int  # of those, at near-ties (NEAR_TIE)
    widest_mismatch_margin: float  # the largest |stock logit| (or label logit gap) at a mismatch
    overlaps: int  # voxels in two or more of our masks: stock's argmax gives each to one of them
    logits_compared: int
    max_logit_difference: float
    mean_logit_difference: float


def labels_and_prompts(model_folder: Path) -> Dict[str, str]:
    """Label name -> canonical prompt, in nnU-Net's channel order (label values 1, 2, ...)."""
    dataset = json.loads((model_folder / "dataset.json").read_text(encoding="utf-8"))
    names = sorted((v, k) for k, v in dataset["labels"].items() if v != 0)
    return {name: dataset["text_prompts"][name][0] for _, name in names}


def stock_logits(probabilities: np.ndarray) -> np.ndarray:
    """(K + 1, *S) softmax over [0, l_1 .. l_K] -> (K, *S) float64 logits l_k = log p_k - log p_0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(probabilities.astype(np.float64))
    return logs[1:] - logs[:1]


def logits_of_float16(probabilities: np.ndarray):
    """Our float16 sigmoid -> (float64 logit, how far float16 rounding can move it)."""
    p = probabilities.astype(np.float64)
    half_step = np.spacing(probabilities).astype(np.float64) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        logit = np.log(p) - np.log1p(-p)
        low, high = p - half_step, p + half_step
        resolution = np.maximum(logit - (np.log(low) - np.log1p(-low)), (np.log(high) - np.log1p(-high)) - logit)
    return logit, np.nan_to_num(resolution, nan=np.inf)


def stock_weight_sums(network_shape: Sequence[int], patch_size: Sequence[int], original_shape: Sequence[int]):
    """nnU-Net's summed Gaussian weights per voxel (network grid, nearest-resampled to the original one). Where they
    are tiny (the volume's outer edges and corners), its float16 sums are subnormal and round its logits coarsely."""
    padded, unpad = pad_nd_image(np.zeros(network_shape, dtype=np.float32), patch_size, return_slicer=True)
    gaussian = compute_gaussian(tuple(patch_size), 1.0 / 8, 10, torch.float16, torch.device("cpu")).float().numpy()
    for corner in itertools.product(*compute_steps_for_sliding_window(padded.shape, tuple(patch_size), 0.5)):
        padded[tuple(slice(c, c + p) for c, p in zip(corner, patch_size))] += gaussian
    weights = padded[tuple(unpad)]
    return ndimage.zoom(weights, [o / n for o, n in zip(original_shape, network_shape)], order=0, mode="nearest", grid_mode=True)


def dice_or_agreement(ours: np.ndarray, stock: np.ndarray) -> float:
    """Dice of two masks; 1.0 when both are empty (a structure outside a crop is an agreement, not 0/0)."""
    total = int(ours.sum()) + int(stock.sum())
    return 2 * float(np.sum(ours & stock)) / total if total else 1.0


def compare(stock_folder: Path, our_folder: Path, case: str, prompts: Dict[str, str],
            stock_precise: np.ndarray) -> Comparison:
    stock_map = sitk.GetArrayFromImage(sitk.ReadImage(str(stock_folder / f"{case}.nii.gz")))
    reference = stock_logits(np.load(stock_folder / f"{case}.npz")["probabilities"])
    masks = np.stack([sitk.GetArrayFromImage(sitk.ReadImage(str(our_folder / prompt_file_name(case, p)))) > 0
                      for p in prompts.values()])
    stock_masks = np.stack([stock_map == k + 1 for k in range(len(prompts))])
    dice = {name: dice_or_agreement(masks[k], reference[k] > 0) for k, name in enumerate(prompts)}
    stock_voxels = {name: int(np.sum(reference[k] > 0)) for k, name in enumerate(prompts)}
    label_map_dice = {name: dice_or_agreement(masks[k], stock_masks[k]) for k, name in enumerate(prompts)}
    # a decision differs where our mask k disagrees with l_k > 0, or stock's label (background) is outside our masks
    # (inside one of them); its margin is how far stock's deciding logit lies from 0
    label = np.maximum(stock_map, 1)[None] - 1  # stock's label as a channel index (any channel for background)
    label_logit, in_our_mask = np.take_along_axis(reference, label, 0)[0], np.take_along_axis(masks, label, 0)[0]
    labelled = stock_map > 0
    margins = np.concatenate([np.abs(reference)[masks != (reference > 0)],
                              np.abs(np.where(labelled, label_logit, reference.max(0)))[
                                  np.where(labelled, ~in_our_mask, masks.any(0))]])
    our_logits, resolution = logits_of_float16(np.stack([np.load(probability_file(our_folder, case, p))[ARRAY_KEY]
                                                         for p in prompts.values()]))
    provided = (resolution <= FLOAT16_RESOLUTION) & (np.abs(reference) <= STOCK_LOGIT_RANGE) & stock_precise
    difference = np.abs(our_logits - reference)[provided]
    return Comparison(dice, stock_voxels, label_map_dice, int(np.count_nonzero(stock_map)), int(margins.size),
                      int(np.sum(margins < NEAR_TIE)), float(margins.max(initial=0)), int(np.sum(masks.sum(0) > 1)),
                      int(difference.size), float(difference.max()), float(difference.mean()))


def write_mirrored_model(model_folder: Path, results: Path) -> None:
    """A copy of the model whose checkpoint declares nnU-Net's mirror axes (0, 1, 2); same weights."""
    target = results / model_folder.parent.name / model_folder.name
    shutil.copytree(model_folder, target, ignore=shutil.ignore_patterns("checkpoint_*", "*.png", "*.txt"))
    checkpoint = torch_load_weights_only(model_folder / "fold_all" / CHECKPOINT)
    checkpoint["inference_allowed_mirroring_axes"] = (0, 1, 2)
    torch.save(checkpoint, target / "fold_all" / CHECKPOINT)


def run_stock(env: dict, results: Path, inputs: Path, output: Path, mirroring: bool) -> None:
    command = ["nnUNetv2_predict", "-i", str(inputs), "-o", str(output), "-d", str(LEARNING_DATASET_ID),
               "-tr", LEARNING_TRAINER, "-p", LEARNING_PLANS, "-c", "3d_fullres", "-f", "all", "-chk", CHECKPOINT,
               "-device", "cpu", "--save_probabilities", "-npp", "1", "-nps", "1", "--disable_progress_bar"]
    result = subprocess.run(command + ([] if mirroring else ["--disable_tta"]), env={**env, "nnUNet_results": str(results)},
                            capture_output=True, encoding="utf-8", errors="replace", timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def run_ours(model_folder: Path, inputs: Path, output: Path, readout: type, mirroring: bool) -> None:
    """``nnUNetv2_openvocab_predict`` in this process, its readout fixed (it picks the smaller buffer itself)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(predictor, "choose_readout", lambda network, embeddings, num_folds=1: readout(network, embeddings))
        predict_entry.main(["-i", str(inputs), "-o", str(output), "-m", str(model_folder), "-f", "all", "-chk",
                            CHECKPOINT, "-device", "cpu", "--grounding", "text", "--save_probabilities", "--no-side-check",
                            "--disable_progress_bar"] + ([] if mirroring else ["--disable_tta"]))


def write_inputs(root: Path) -> Dict[str, Path]:
    """The bundled CT at 3 mm, and a 72^3 crop of it resampled to 1.5 mm (linear): one input folder each."""
    ct = sitk.ReadImage(str(EXAMPLE_CT))
    crop = ct[CROP_1P5MM]
    fine = sitk.Resample(crop, [2 * n for n in crop.GetSize()], sitk.Transform(), sitk.sitkLinear, crop.GetOrigin(),
                         [s / 2 for s in crop.GetSpacing()], crop.GetDirection(), -1024, crop.GetPixelID())
    folders = {"ct3mm": root / "ct3mm", "crop1p5mm": root / "crop1p5mm"}
    for (case, folder), image in zip(folders.items(), (ct, fine)):
        folder.mkdir()
        sitk.WriteImage(image, str(folder / f"{case}_0000.nii.gz"))
    return folders


def stock_precision(stock_folder: Path, case: str, model_folder: Path) -> np.ndarray:
    """Voxels where nnU-Net's weight sums reach STOCK_PRECISE_WEIGHT, in the original array layout."""
    properties = load_pickle(str(stock_folder / f"{case}.pkl"))
    configuration = json.loads((model_folder / "plans.json").read_text(encoding="utf-8"))["configurations"]["3d_fullres"]
    cropped = properties["shape_after_cropping_and_before_resampling"]
    network_shape = compute_new_shape(cropped, properties["spacing"], configuration["spacing"])
    precise = np.zeros(properties["shape_before_cropping"], dtype=bool)
    precise[bounding_box_to_slice(properties["bbox_used_for_cropping"])] = \
        stock_weight_sums(network_shape, configuration["patch_size"], cropped) >= STOCK_PRECISE_WEIGHT
    return precise


@pytest.fixture(scope="module")
def predictions(trained_openvocab_model, tmp_path_factory) -> Dict[str, Comparison]:
    """One stock run and one own run per readout and case; comparisons keyed "<readout> <case>"."""
    root = tmp_path_factory.mktemp("equivalence")
    model = trained_openvocab_model
    prompts = labels_and_prompts(model.model_folder)
    inputs = write_inputs(root)
    mirrored_results = root / "mirrored_results"
    write_mirrored_model(model.model_folder, mirrored_results)
    models = {"ct3mm": (model.folders.results, model.model_folder, False),
              "crop1p5mm": (mirrored_results, mirrored_results / model.model_folder.parent.name / model.model_folder.name,
                            True)}
    comparisons = {}
    for case, (results, model_folder, mirroring) in models.items():
        run_stock(model.folders.env, results, inputs[case], root / f"stock_{case}", mirroring)
        precise = stock_precision(root / f"stock_{case}", case, model_folder)
        for name, readout in READOUTS.items():
            run_ours(model_folder, inputs[case], root / f"{name}_{case}", readout, mirroring)
            comparisons[f"{name} {case}"] = compare(root / f"stock_{case}", root / f"{name}_{case}", case, prompts,
                                                    precise)
            print(f"{name} {case}: {comparisons[f'{name} {case}']}")
    return comparisons


SETTINGS = [f"{readout} {case}" for readout in READOUTS for case in ("ct3mm", "crop1p5mm")]


@pytest.mark.parametrize("setting", SETTINGS)
def test_masks_equal_nnunet_except_at_near_ties(predictions, setting):
    """A decision may differ only where stock's logit lies within the logits' agreement of 0, and rarely."""
    found = predictions[setting]
    assert found.mismatches < MAX_NEAR_TIE_SHARE * found.foreground, found
    assert found.widest_mismatch_margin <= LOGIT_TOLERANCE, found


@pytest.mark.parametrize("setting", SETTINGS)
def test_dice_against_nnunet_per_label(predictions, setting):
    found = predictions[setting]
    measured = [name for name, voxels in found.stock_voxels.items() if voxels >= MIN_VOXELS_FOR_DICE]
    assert measured, found
    assert min(found.dice[name] for name in measured) >= MIN_DICE, found


@pytest.mark.parametrize("setting", SETTINGS)
def test_logits_equal_nnunet_where_both_provide_them(predictions, setting):
    found = predictions[setting]
    assert found.logits_compared > 0.1 * found.foreground, found  # the comparison covers the decisive range
    assert found.max_logit_difference <= LOGIT_TOLERANCE, found
