"""Presence figures and status of one prompt's answer (synthetic logits)."""
from __future__ import annotations

import torch

from nnunetv2_openvocab.inference.presence import LogitSummary, presence, presence_summary

CONFIDENT, STRAY = torch.full((4, 4, 4), -8.0), torch.full((4, 4, 4), -8.0)
CONFIDENT[1:3, 1:3, 1:3] = 6.0
STRAY[0, 0, 0] = 0.5  # one voxel just above 0.5, far from confident


def test_status():
    found = presence(8, [LogitSummary.of(CONFIDENT)])
    assert found.status == "present" and found.max_probability > 0.99 and found.mean_probability > 0.99
    stray = presence(1, [LogitSummary.of(STRAY)])
    assert stray.status == "absent" and 0.5 < stray.max_probability < 0.7
    empty = presence(0, [LogitSummary.of(torch.full((2, 2, 2), -3.0))])
    assert empty.status == "absent" and empty.mean_probability is None


def test_union_takes_the_highest_maximum_and_the_mean_over_all_components():
    both = presence(9, [LogitSummary.of(CONFIDENT), LogitSummary.of(STRAY)])
    assert both.status == "present" and both.max_probability > 0.99
    assert abs(both.mean_probability - (8 * torch.sigmoid(torch.tensor(6.0)) + torch.sigmoid(torch.tensor(0.5))) / 9) < 1e-3


def test_summary_line():
    line = presence_summary({"ct_1": {"liver": presence(8, [LogitSummary.of(CONFIDENT)]),
                                      "brain": presence(0, [LogitSummary.of(STRAY * 0 - 5)])}})
    assert line.startswith("Presence: 1 of 2 prompt answers present") and "'brain' in ct_1" in line


def test_an_empty_text_route_answer_says_so():
    empty = presence(0, [LogitSummary.of(torch.full((2, 2, 2), -3.0))], text_route=True)
    assert empty.status == "absent (text route)"
    assert presence(8, [LogitSummary.of(CONFIDENT)], text_route=True).status == "present"
    line = presence_summary({"ct_1": {"banana": empty}})
    assert line.startswith("Presence: 0 of 1 prompt answers present") and "'banana' in ct_1" in line
