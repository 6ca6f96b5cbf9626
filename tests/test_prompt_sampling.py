"""Prompt sampling covers every synonym; annotated flags follow dataset.json; targets handle region labels."""
from __future__ import annotations

import torch

from nnunetv2_openvocab.prompts.dataset_prompts import DatasetPrompts
from nnunetv2_openvocab.training.prompt_sampling import LabelTargets, PromptSampler

DATASET = {
    "labels": {"background": 0, "kidney": [1, 2], "tumor": 2, "liver": 3},
    "text_prompts": {"kidney": ["kidney", "renal parenchyma", "kidneys"], "tumor": ["kidney tumor"],
                     "liver": ["liver", "hepar"]},
    "annotated_labels": {"case_partial": ["liver"]},
}


def test_sampling_covers_every_synonym():
    sampler = PromptSampler(DatasetPrompts(DATASET), seed=0)
    seen = set()
    for _ in range(200):
        indices, _ = sampler.sample(["case_full"] * 2)
        seen.update(sampler.all_prompts[i] for i in indices.flatten().tolist())
    assert seen == set(sampler.all_prompts)


def test_each_channel_draws_from_its_own_label():
    prompts = DatasetPrompts(DATASET)
    sampler = PromptSampler(prompts, seed=1)
    indices, _ = sampler.sample(["a", "b", "c"])
    for row in indices.tolist():
        for column, index in enumerate(row):
            assert sampler.all_prompts[index] in prompts.labels[column].prompts


def test_annotated_flags_mask_unannotated_labels():
    sampler = PromptSampler(DatasetPrompts(DATASET), seed=0)
    _, annotated = sampler.sample(["case_full", "case_partial"])
    assert annotated.tolist() == [[True, True, True], [False, False, True]]


def test_canonical_indices():
    sampler = PromptSampler(DatasetPrompts(DATASET))
    assert [sampler.all_prompts[i] for i in sampler.canonical_indices()] == ["kidney", "kidney tumor", "liver"]


def test_region_labels_become_unions_and_unknown_values_background():
    segmentation = torch.tensor([0, 1, 2, 3, 7, -1]).reshape(1, 1, 6)
    targets = LabelTargets(DatasetPrompts(DATASET))(segmentation)
    assert targets.shape == (1, 3, 6)
    assert targets[0].tolist() == [[False, True, True, False, False, False],
                                   [False, False, True, False, False, False],
                                   [False, False, False, True, False, False]]
