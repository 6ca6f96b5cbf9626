"""The prompt decides what is segmented: a small STUNet trained a few CPU minutes on the real CT.

The model comes from the session fixture ``trained_openvocab_model`` (stock ``nnUNetv2_train -tr
nnUNetTrainerOpenVocab_CPUShort`` on three axial slabs of the bundled TotalSegmentator CT). Each canonical
prompt is predicted on the full scan with the predictor (sliding window, as users run it); its mask must overlap its own structure far better than any
other structure, and far better than the same prompt on an untrained network. The cases are slabs of the
training scan itself, so this proves learning and prompt conditioning, not generalisation.
Thresholds were set from observed runs (see the constants) with a wide margin for run-to-run noise.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import SimpleITK as sitk

from nnunetv2_openvocab.inference.predictor import OpenVocabPredictor
from nnunetv2_openvocab.training.nnUNetTrainerOpenVocab import nnUNetTrainerOpenVocab

# Observed on the 2-core CPU (2026-12-01), own Dice / best other structure. 750 iterations (CI run): liver 0.89,
# spleen 0.90, left kidney 0.82, right kidney 0.75, aorta 0.68, L3 0.48 / every other <= 0.001; untrained 0.00.
# With 500 iterations one run separated the kidneys (0.69, 0.63) and one did not yet (left 0.40 with 0.48 on the
# right kidney), hence 750. Left and right are learnable at all only because the synonyms differ in the text
# space (data/example_prompts.json; MiniLM puts "kidney on the left side" and "... right side" at cosine 0.99).
MIN_OWN_DICE = 0.3
MIN_MARGIN_OVER_OTHERS = 0.2
MIN_MARGIN_OVER_UNTRAINED = 0.2


def dice(a: np.ndarray, b: np.ndarray) -> float:
    denominator = a.sum() + b.sum()
    return float(2 * (a & b).sum() / denominator) if denominator else float("nan")


def dice_table(predictor: OpenVocabPredictor, image, labels: np.ndarray) -> np.ndarray:
    """Rows: canonical prompts; columns: structures (label values 1..L); sliding-window inference as in use."""
    masks = predictor.predict_single_image(image, predictor.training_prompts)
    return np.array([[dice(mask > 0, labels == value) for value in range(1, len(masks) + 1)]
                     for mask in masks.values()])


@pytest.fixture(scope="module")
def dice_tables(trained_openvocab_model):
    model = trained_openvocab_model
    predictor = OpenVocabPredictor(tile_step_size=0.5, use_mirroring=False, device=torch.device("cpu"),
                                   show_progress=False).initialize_from_trained_model_folder(model.model_folder)
    image = model.dataset_folder / "imagesTr" / "example_000_0000.nii.gz"
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(model.dataset_folder / "labelsTr" / "example_000.nii.gz")))
    tables = {"trained": dice_table(predictor, image, labels)}
    network = predictor.model.network
    trained_state = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in network.state_dict().items()}
    torch.manual_seed(0)
    untrained = nnUNetTrainerOpenVocab.build_network_architecture(  # same architecture, fresh initialisation
        predictor.model.plans_manager, predictor.model.configuration_manager, 1, len(model.structures) + 1, False)
    network.load_state_dict({**untrained.state_dict(), **{k: v for k, v in trained_state.items()
                                                          if "default_embeddings" in k or "_extra_state" in k}})
    tables["untrained"] = dice_table(predictor, image, labels)
    network.load_state_dict(trained_state)
    return tables, network.head.metadata


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
