"""CLIP / MGCL losses, the learnable temperature, and retrieval recall, checked against hand computations.

The distributed half of `gather_features` (gradients through the gather) is checked in
test_pretraining_ddp.py.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from nnunetv2_openvocab.pretraining.config import TrainConfig
from nnunetv2_openvocab.pretraining.loss import ClipLoss, MultiGranularityClipLoss, build_loss, gather_features
from nnunetv2_openvocab.pretraining.retrieval import recall_at_k, retrieval_recall


def _features(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _symmetric_infonce_by_hand(images: torch.Tensor, texts: torch.Tensor, scale: float) -> float:
    """Eq. 2 both ways, written out with explicit sums."""
    images, texts = F.normalize(images, dim=-1), F.normalize(texts, dim=-1)
    similarity = scale * images @ texts.T
    n = len(images)
    image_to_text = -sum(similarity[i, i] - torch.logsumexp(similarity[i], 0) for i in range(n)) / n
    text_to_image = -sum(similarity[i, i] - torch.logsumexp(similarity[:, i], 0) for i in range(n)) / n
    return float((image_to_text + text_to_image) / 2)


def test_clip_loss_is_symmetric_infonce_with_temperature_0_07():
    images, reports = _features(6, 8), _features(6, 8, seed=1)
    loss = ClipLoss()
    assert loss.scale().item() == pytest.approx(1 / 0.07)
    losses = loss(images, reports)
    assert set(losses) == {"clip_loss"}
    assert losses["clip_loss"].item() == pytest.approx(_symmetric_infonce_by_hand(images, reports, 1 / 0.07), rel=1e-5)


def test_mgcl_adds_the_mean_clip_loss_over_caption_slots():
    images, reports, captions = _features(5, 8), _features(5, 8, seed=1), _features(3, 5, 8, seed=2)
    losses = MultiGranularityClipLoss()(images, reports, captions)
    assert set(losses) == {"clip_loss", "mgcl_loss"}
    expected = sum(_symmetric_infonce_by_hand(images, captions[k], 1 / 0.07) for k in range(3)) / 3
    assert losses["mgcl_loss"].item() == pytest.approx(expected, rel=1e-5)
    assert losses["clip_loss"].item() == pytest.approx(_symmetric_infonce_by_hand(images, reports, 1 / 0.07), rel=1e-5)
    with pytest.raises(ValueError, match="caption features"):
        MultiGranularityClipLoss()(images, reports)


def test_aligned_pairs_score_lower_than_shuffled_ones_and_gradients_reach_everything():
    images = _features(8, 16).requires_grad_()
    aligned = ClipLoss()(images, images.detach() + 0.01 * _features(8, 16, seed=3))["clip_loss"]
    shuffled = ClipLoss()(images, images.detach()[torch.randperm(8, generator=torch.Generator().manual_seed(0))])
    assert aligned.item() < 0.01 < math.log(8) / 2 < shuffled["clip_loss"].item()
    loss = ClipLoss()
    texts = _features(8, 16, seed=4).requires_grad_()
    loss(images, texts)["clip_loss"].backward()
    assert images.grad.abs().sum() > 0 and texts.grad.abs().sum() > 0 and loss.logit_scale.grad.abs() > 0


def test_logit_scale_is_clamped_and_then_gets_no_gradient():
    loss = ClipLoss(init_logit_scale=1000.0, max_logit_scale=100.0)
    assert loss.scale().item() == pytest.approx(100.0)
    loss(_features(4, 8), _features(4, 8, seed=1))["clip_loss"].backward()
    assert loss.logit_scale.grad.item() == 0.0


def test_build_loss_follows_the_config_and_gather_is_identity_on_one_process():
    assert type(build_loss(TrainConfig(loss="clip"))) is ClipLoss
    assert type(build_loss(TrainConfig())) is MultiGranularityClipLoss
    features = _features(3, 4)
    assert gather_features(features) is features
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainConfig(loss="siglip")


def test_recall_counts_ties_against_the_match():
    similarity = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.5], [0.9, 0.0, 0.5]])
    # row 0: tie with column 1 -> rank 1; row 1: rank 0; row 2: column 0 scores higher -> rank 1
    assert recall_at_k(similarity, (1, 2)) == {1: pytest.approx(1 / 3), 2: pytest.approx(1.0)}
    identical = _features(10, 6)
    results = retrieval_recall(identical, identical * 3.0)
    assert results["image_to_report_R@1"] == 1.0 and results["report_to_image_R@1"] == 1.0
    assert set(results) == {f"{direction}_R@{k}" for direction in ("image_to_report", "report_to_image")
                            for k in (1, 5, 10)}
