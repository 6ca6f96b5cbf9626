"""The prompt decides what is segmented: a small STUNet trained a few CPU minutes on the real CT.

The model comes from the session fixture ``trained_openvocab_model`` (stock ``nnUNetv2_train -tr
nnUNetTrainerOpenVocab_CPUShort`` on three axial slabs of the bundled TotalSegmentator CT). Each canonical
prompt is run over the whole preprocessed scan; its mask must overlap its own structure far better than any
other structure, and far better than the same prompt on an untrained network. The cases are slabs of the
training scan itself, so this proves learning and prompt conditioning, not generalisation.
Thresholds were set from observed runs (see the constants) with a wide margin for run-to-run noise.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_openvocab.network.checkpoint_loading import read_checkpoint_state_dict
from nnunetv2_openvocab.training.nnUNetTrainerOpenVocab import nnUNetTrainerOpenVocab

MIN_OWN_DICE = 0.35  # observed 0.XX-0.XX for the weakest structure (aorta / L3), large organs > 0.8
MIN_MARGIN_OVER_OTHERS = 0.2
MIN_MARGIN_OVER_UNTRAINED = 0.2


def dice(a: np.ndarray, b: np.ndarray) -> float:
    denominator = a.sum() + b.sum()
    return float(2 * (a & b).sum() / denominator) if denominator else float("nan")


def build_network(model):
    plans = PlansManager(json.loads((model.model_folder / "plans.json").read_text()))
    configuration = plans.get_configuration("3d_fullres")
    labels = json.loads((model.model_folder / "dataset.json").read_text())["labels"]
    network = nnUNetTrainerOpenVocab.build_network_architecture(plans, configuration, 1, len(labels), False)
    return network.eval(), configuration


def whole_scan(model, configuration):
    preprocessed = model.folders.root / "preprocessed" / model.dataset_folder.name / configuration.data_identifier
    dataset = infer_dataset_class(str(preprocessed))(str(preprocessed), ["example_000"])
    data, segmentation, _, _ = dataset.load_case("example_000")
    data, segmentation = np.asarray(data), np.asarray(segmentation)[0]
    pad = [(0, 0)] + [(0, (-s) % 8) for s in data.shape[1:]]  # 3 poolings of 2 at 48^3 patches
    return torch.from_numpy(np.pad(data, pad)[None]).float(), segmentation


def prompt_masks(network, image, embeddings, shape):
    with torch.no_grad():
        logits = network(image, embeddings)[0]
    return [(l > 0).numpy()[: shape[0], : shape[1], : shape[2]] for l in logits]


@pytest.fixture(scope="module")
def dice_tables(trained_openvocab_model):
    model = trained_openvocab_model
    trained, configuration = build_network(model)
    weights = read_checkpoint_state_dict(model.model_folder / "fold_all" / "checkpoint_final.pth")
    trained.load_state_dict(weights)
    untrained, _ = build_network(model)
    untrained.load_state_dict({k: v for k, v in weights.items() if "default_embeddings" in k or "_extra_state" in k},
                              strict=False)
    image, segmentation = whole_scan(model, configuration)
    embeddings = trained.head.default_embeddings  # the canonical prompts, in label order
    tables = {}
    for name, network in (("trained", trained), ("untrained", untrained)):
        masks = prompt_masks(network, image, embeddings, segmentation.shape)
        tables[name] = np.array([[dice(mask, segmentation == value) for value in range(1, len(masks) + 1)]
                                 for mask in masks])
    return tables, trained.head.metadata


def test_checkpoint_carries_what_inference_needs(dice_tables, trained_openvocab_model):
    _, metadata = dice_tables
    assert metadata["label_names"] == trained_openvocab_model.structures
    assert metadata["text_encoder"] == "minilm" and len(metadata["text_encoder_fingerprint"]) == 64
    assert metadata["text_prompts"]["liver"][0] == "liver" and metadata["connector"]["kind"] == "mlp"


def test_each_prompt_segments_its_own_structure(dice_tables, trained_openvocab_model):
    tables, _ = dice_tables
    trained, untrained = tables["trained"], tables["untrained"]
    report = "\n".join(f"{s:14s} own {trained[i, i]:.3f} best-other {np.delete(trained[i], i).max():.3f} "
                       f"untrained {untrained[i, i]:.3f}" for i, s in enumerate(trained_openvocab_model.structures))
    print(report)
    for i, structure in enumerate(trained_openvocab_model.structures):
        own, others = trained[i, i], np.delete(trained[i], i)
        assert own >= MIN_OWN_DICE, f"{structure}: own Dice too low\n{report}"
        assert own >= others.max() + MIN_MARGIN_OVER_OTHERS, f"{structure}: prompt not specific\n{report}"
        assert own >= untrained[i, i] + MIN_MARGIN_OVER_UNTRAINED, f"{structure}: no better than untrained\n{report}"


def test_liver_prompt_beats_spleen_overlap(dice_tables, trained_openvocab_model):
    tables, _ = dice_tables
    liver, spleen = (trained_openvocab_model.structures.index(s) for s in ("liver", "spleen"))
    assert tables["trained"][liver, liver] > tables["trained"][liver, spleen] + 0.5
