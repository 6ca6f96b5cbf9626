"""PromptSegmentationLoss: hand-computed Dice values, per-(sample, prompt) reduction, masked back-propagation."""
from __future__ import annotations

import torch

from nnunetv2_openvocab.training.loss import DeepSupervisionPromptLoss, PromptSegmentationLoss, soft_dice_per_channel


def test_soft_dice_hand_computed():
    probabilities = torch.tensor([[[0.5, 0.5, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]])  # (B=1, P=2, S=4)
    targets = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]])
    dice = soft_dice_per_channel(probabilities, targets, smooth=0.0)
    # channel 0: 2*0.5 / (1 + 1) = 0.5; channel 1: 2*2 / (4 + 2) = 2/3
    torch.testing.assert_close(dice, torch.tensor([[0.5, 2 / 3]]))


def test_dice_is_per_sample_and_per_prompt_not_pooled():
    # sample 0 is perfect, sample 1 predicts nothing: pooled over the batch it would be 2/3, per sample 1 and ~0
    targets = torch.tensor([[[1.0, 1.0]], [[1.0, 1.0]]])  # (B=2, P=1, S=2)
    probabilities = torch.tensor([[[1.0, 1.0]], [[0.0, 0.0]]])
    dice = soft_dice_per_channel(probabilities, targets, smooth=0.0)
    assert dice.shape == (2, 1)
    torch.testing.assert_close(dice, torch.tensor([[1.0], [0.0]]))


def test_gradient_of_unannotated_label_is_exactly_zero():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, 8, requires_grad=True)
    targets = torch.rand(2, 3, 8, 8, 8) > 0.5
    annotated = torch.tensor([[True, False, True], [True, True, False]])
    logits_with_nan = logits.clone()
    loss = PromptSegmentationLoss()(logits, targets, annotated)
    loss.backward()
    assert torch.all(logits.grad[0, 1] == 0) and torch.all(logits.grad[1, 2] == 0)
    assert logits.grad[0, 0].abs().sum() > 0 and logits.grad[1, 1].abs().sum() > 0
    # a NaN in an unannotated channel must not reach the loss
    with torch.no_grad():
        logits_with_nan[0, 1] = float("nan")
    assert torch.isfinite(PromptSegmentationLoss()(logits_with_nan, targets, annotated))


def test_nothing_annotated_gives_zero_loss_with_graph():
    logits = torch.randn(1, 2, 4, 4, 4, requires_grad=True)
    loss = PromptSegmentationLoss()(logits, torch.zeros_like(logits, dtype=torch.bool), torch.zeros(1, 2, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0 and torch.all(logits.grad == 0)


def test_perfect_prediction_has_low_loss_and_wrong_has_high():
    targets = torch.zeros(1, 1, 4, 4, 4, dtype=torch.bool)
    targets[..., :2, :, :] = True
    good = torch.where(targets, 20.0, -20.0)
    annotated = torch.ones(1, 1, dtype=torch.bool)
    loss = PromptSegmentationLoss()
    assert loss(good, targets, annotated) < 1e-3
    assert loss(-good, targets, annotated) > 1.9


def test_deep_supervision_weights_match_nnunet():
    ds = DeepSupervisionPromptLoss(PromptSegmentationLoss(), 5)
    expected = torch.tensor([1, 0.5, 0.25, 0.125, 0.0])
    torch.testing.assert_close(torch.tensor(ds.weights), expected / expected.sum())
