"""Whether a prompted structure is in the image: per case and prompt, confidence figures and a status.

For each prompt: ``voxels`` of the final mask (input geometry), and from the network-resolution logits the
``max_probability`` (highest sigmoid anywhere) and ``mean_probability`` (mean sigmoid over the voxels above
0.5; null when there are none). A union of labels (grounding) takes the highest maximum and the mean over all
its components' foreground voxels.

Status: ``absent`` when the mask is empty or ``max_probability < PRESENT_CONFIDENCE`` (0.90): no voxel is
confidently the structure, so a stray low-confidence mask is reported as not found rather than as a finding;
``absent (text route)`` for the same on a prompt answered by its own text query (grounding's text route: an
unlearnt or ungrounded prompt, whose empty mask is no finding about the image); ``present`` otherwise.
Measured on the bundled CT with the test-session recipe stopped after 5 epochs: the labels it had learnt peak
at >= 0.9996 (liver, aorta, L3), while labels still being learnt (spleen 0.73, kidneys 0.53-0.74) are also
reported absent: the status says what the model is confident of, not what is in the image.
Confidence alone does not stop a stray mask: after 15 epochs the raw text query of 'brain', a structure the model
never learnt, reached 0.90 on one CI run, and 'banana' covers 18616 voxels at 0.96 (on the liver). The mask of an
unlearnt taxonomy structure therefore first cedes the voxels its disjoint training labels claim (grounding's
``cedes_to``); brain then keeps no voxel on the three models measured (raw masks of up to 574 voxels peaking at
0.35-0.76; what remains peaks below 0.5, at voxels where it ties a learnt label), and heart keeps 0-60 of its
786-1,839 voxels, below 0.90. 'banana' has no taxonomy entry, so nothing says its mask is wrong, and it can stay
``present``: the prompt report shows its text route and far nearest neighbour.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Iterable, Mapping, Optional

import torch
from nnunetv2_openvocab.constants import binarise

PRESENT_CONFIDENCE = 0.90
PRESENT, ABSENT = "present", "absent"
ABSENT_TEXT_ROUTE = "absent (text route)"  # the prompt's own text query found nothing: not a label's verdict


@dataclass(frozen=True)
class LogitSummary:
    """What presence needs from one query's logits: the maximum, and the foreground count and probability sum."""

    max_logit: float
    foreground: int
    probability_sum: float

    @classmethod
    def of(cls, logits: torch.Tensor) -> "LogitSummary":
        foreground = logits[binarise(logits)]
        return cls(float(logits.max()), int(foreground.numel()), float(torch.sigmoid(foreground.float()).sum()))


@dataclass(frozen=True)
class Presence:
    voxels: int
    max_probability: float
    mean_probability: Optional[float]
    status: str

    def to_dict(self) -> dict:
        return asdict(self)


def presence(voxels: int, summaries: Iterable[LogitSummary], text_route: bool = False) -> Presence:
    """``text_route``: the answer is the prompt's own text query (grounding), whose absence says less than a
    learnt label's: it is reported as ``absent (text route)``."""
    summaries = list(summaries)
    max_probability = float(torch.sigmoid(torch.tensor(max(s.max_logit for s in summaries))))
    foreground = sum(s.foreground for s in summaries)
    mean = sum(s.probability_sum for s in summaries) / foreground if foreground else None
    status = PRESENT
    if voxels == 0 or max_probability < PRESENT_CONFIDENCE:
        status = ABSENT_TEXT_ROUTE if text_route else ABSENT
    return Presence(voxels, round(max_probability, 4), None if mean is None else round(mean, 4), status)


def presence_summary(per_case: Mapping[str, Mapping[str, Presence]]) -> str:
    """One line: how many prompt answers were present, and which were absent where."""
    absent: Dict[str, list] = {}
    total = 0
    for case, prompts in per_case.items():
        for prompt, found in prompts.items():
            total += 1
            if found.status != PRESENT:
                absent.setdefault(prompt, []).append(case)
    if not total:
        return "Presence: no case predicted in this run."
    listed = "; ".join(f"'{prompt}' in {', '.join(cases)}" for prompt, cases in absent.items())
    return (f"Presence: {total - sum(map(len, absent.values()))} of {total} prompt answers present"
            + (f"; absent (not found, mask empty or below {PRESENT_CONFIDENCE:.2f} confidence): {listed}"
               if absent else "."))
