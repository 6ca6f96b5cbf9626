"""From one blended sliding-window volume to every prompt's answer: mask, presence and (on request) probabilities.

The grounded queries of all prompts share the pass (``QueryPlan``). A query's mask is computed once and kept only
until the last prompt that uses it; a union of queries (grounding's ``union`` route) is the union of their masks,
and its probability map their maximum. Nothing holds a prompts x volume buffer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from nnunetv2_openvocab.inference.original_geometry import OriginalGeometry
from nnunetv2_openvocab.inference.patient_side import PatientFrame, SideCheck, check_answer_side, trim_label_mask
from nnunetv2_openvocab.inference.presence import LogitSummary, Presence, presence
from nnunetv2_openvocab.inference.prompt_readout import cede_to_rivals
from nnunetv2_openvocab.inference.sliding_window import BlendedVolume
from nnunetv2_openvocab.prompts.grounding import TEXT, Grounding


@dataclass(frozen=True)
class PromptAnswer:
    """One prompt's mask in the input's array layout, with its presence figures and, if asked for, its float16
    probability map."""

    index: int
    mask: np.ndarray
    presence: Presence
    probabilities: Optional[np.ndarray] = None
    side_check: Optional[SideCheck] = None  # for a prompt that names a side (patient_side)


@dataclass(frozen=True)
class QueryPlan:
    """The queries one pass must read out: those answering the prompts, then their rivals (queries a mask cedes
    to: a sided label's other-side twin, and the labels that cannot overlap an unlearnt structure's text query)."""

    queries: List[str]
    rivals: Dict[str, Tuple[str, ...]]

    @classmethod
    def of(cls, groundings: Sequence[Grounding], twin_queries: Mapping[str, str]) -> "QueryPlan":
        answered = list(dict.fromkeys(q for g in groundings for q in g.queries))
        rivals = {q: (twin_queries[q],) for q in answered if q in twin_queries}
        rivals.update((g.queries[0], g.cedes_to) for g in groundings if g.cedes_to)
        return cls(list(dict.fromkeys([*answered, *(r for q in rivals.values() for r in q)])), rivals)


def answer_prompts(prompts: Sequence[str], groundings: Sequence[Grounding], plan: QueryPlan, readout,
                   volume: BlendedVolume, geometry: OriginalGeometry, label_of_query: Mapping[str, str],
                   probabilities: bool = False, frame: Optional[PatientFrame] = None) -> Iterator[PromptAnswer]:
    """Each grounded prompt's answer, in prompt order (``readout``: prompt_readout's choice for ``plan.queries``;
    ``label_of_query``: canonical prompt -> training label). With the patient ``frame``, a sided label's own mask
    keeps to its side of the midline and a sided prompt's answer must lie on its side (patient_side)."""
    query_index = {q: i for i, q in enumerate(plan.queries)}
    last_use = {q: i for i, g in enumerate(groundings) for q in g.queries}
    computed: Dict[str, Tuple[Tuple[np.ndarray, int], LogitSummary, Optional[np.ndarray]]] = {}
    for index, grounding in enumerate(groundings):
        for query in grounding.queries:
            if query not in computed:
                logits = readout.prompt_logits(volume, query_index[query])
                if query in plan.rivals:
                    cede_to_rivals(logits, readout, volume, [query_index[r] for r in plan.rivals[query]])
                mask, voxels = geometry.mask(logits)
                probability = geometry.probabilities(logits) if probabilities else None
                if query in label_of_query:
                    voxels -= trim_label_mask(label_of_query[query], mask, probability, frame)
                computed[query] = ((mask, voxels), LogitSummary.of(logits), probability)
        parts = [computed[q] for q in grounding.queries]
        if len(parts) == 1:
            (mask, voxels), probability = parts[0][0], parts[0][2]
        else:
            mask = np.logical_or.reduce([m for (m, _), _, _ in parts]).astype(np.uint8)
            voxels = int(np.count_nonzero(mask))
            probability = np.maximum.reduce([p for _, _, p in parts]) if probabilities else None
        # a mask a later prompt reuses is copied before the side check changes it
        shared = len(parts) == 1 and last_use[grounding.queries[0]] > index
        checked, side_check = check_answer_side(prompts[index], grounding, mask, probability, frame, shared), None
        if checked is not None:
            mask, probability, side_check = checked
            voxels = side_check.voxels - side_check.voxels_removed
        found = presence(voxels, [s for _, s, _ in parts], text_route=grounding.route == TEXT)
        yield PromptAnswer(index, mask, found, probability, side_check)
        for query in grounding.queries:
            if last_use[query] == index:
                del computed[query]
