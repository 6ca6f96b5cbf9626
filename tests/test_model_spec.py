"""OpenVocabSpec: plans and checkpoint round trips, layouts written by earlier versions, and its clear errors."""
from __future__ import annotations

import pytest

from nnunetv2_openvocab.model_spec import OpenVocabSpec, OpenVocabSpecError

OLD_PLANS_SECTION = {"text_encoder": "minilm", "embedding_dim": 384, "text_encoder_fingerprint": "f" * 64,
                     "label_names": ["liver", "spleen"], "pretrained_checkpoint": None}  # before "connector"
PROMPTS = {"liver": ("liver", "hepatic parenchyma"), "spleen": ("spleen",)}


def test_plans_of_earlier_versions_read_as_the_mlp_connector_and_round_trip():
    spec = OpenVocabSpec.from_plans({"openvocab": OLD_PLANS_SECTION})
    assert spec.connector == "mlp" and spec.connector_kwargs == {} and spec.label_names == ("liver", "spleen")
    assert OpenVocabSpec.from_plans({"openvocab": spec.to_plans()}) == spec


def test_checkpoint_round_trip_keeps_connector_and_prompts():
    spec = OpenVocabSpec.from_plans({"openvocab": OLD_PLANS_SECTION}).with_connector("cross_attention",
                                                                                     {"num_heads": 2})
    record = spec.with_prompts(PROMPTS).to_checkpoint()
    assert record["connector"] == {"kind": "cross_attention", "num_heads": 2}  # the layout earlier checkpoints have
    restored = OpenVocabSpec.from_checkpoint(record, "fold_0/checkpoint_final.pth")
    assert restored == spec.with_prompts(PROMPTS) and restored.canonical_prompts == ["liver", "spleen"]


def test_missing_section_and_foreign_checkpoints_are_explained():
    with pytest.raises(OpenVocabSpecError, match="Plans 'nnUNetPlans' have no 'openvocab' section"):
        OpenVocabSpec.from_plans({}, "nnUNetPlans")
    with pytest.raises(OpenVocabSpecError, match="lacks text_encoder_fingerprint"):
        OpenVocabSpec.from_plans({"openvocab": {k: v for k, v in OLD_PLANS_SECTION.items()
                                                if k != "text_encoder_fingerprint"}})
    with pytest.raises(OpenVocabSpecError, match="ckpt.pth has no OpenVocab spec"):
        OpenVocabSpec.from_checkpoint({}, "ckpt.pth")


def test_labels_are_checked_against_dataset_json():
    spec = OpenVocabSpec.from_plans({"openvocab": OLD_PLANS_SECTION})
    spec.check_labels({"labels": {"background": 0, "liver": 1, "spleen": 2}}, "dataset.json", "plans")
    with pytest.raises(OpenVocabSpecError, match=r"dataset.json \[labels\].*re-plan"):
        spec.check_labels({"labels": {"background": 0, "spleen": 1, "liver": 2}}, "dataset.json", "plans")
