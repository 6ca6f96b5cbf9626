"""Grounding: answer a prompt whose meaning the taxonomy knows with the training labels it stands for.

Resolution, first hit wins (texts compared by ``prompt_identity``: lower case, words only):
  1. a training prompt of the model (canonical or synonym) -> that label;
  2. a taxonomy structure's name, prompt, synonym or held-out synonym, or its RadLex synonym or definition
     (prompts/radlex_lookup.py: 'ren', 'Milz') -> that structure, compared as is and then after normalisation
     (prompts/normalisation.py: 'both kidneys', 'kidney on the left side');
     a conjunction whose parts all match so ('trachea and esophagus'; side words share the last part's noun:
     'left and right kidney' = 'left kidney' + 'right kidney') -> the union of the parts' labels;
  3. the taxonomy prompt nearest to the prompt in the text encoder's space, when its cosine is at least
     ``match_threshold`` (MATCH_THRESHOLD, calibrated with MiniLM on the shipped unseen sets by
     benchmarks/calibrate_grounding.py, precision in benchmarks/RESULTS.md; recalibrate for other encoders).
     A prompt that names one side only considers structures of that side; one that names none or both sides
     only unsided structures ('left and right kidney' -> kidney, never right kidney);
  4. the definition route (prompts/definition_route.py): a prompt that reads like a definition (at least four
     words after normalisation) reaches the structure whose RadLex definition is nearest in the text encoder's
     space, when its cosine is at least ``definition_threshold`` (calibrated separately per encoder; same side
     rule); the grounding says so (``via`` 'definition', with the cosine and the threshold in its reason).
Routes:
  * ``label``: the structure is a training label -> that label's query (its canonical prompt, whose embedding
    the checkpoint stores);
  * ``union``: the structure is a union of training labels by part-of (``Taxonomy.resolve_to_labels``: left
    lung = its lobes, renal organs = both kidneys) -> the union of those labels' masks, read from the same
    backbone pass as every other prompt;
  * ``text``: anything else -> the prompt's own text query. When the prompt named a taxonomy structure that the
    model never learnt ('brain' for an abdominal model), its mask cedes the voxels where a training label that
    cannot share a voxel with that structure (``Taxonomy.can_overlap``: not the same, not part of one another,
    not a lesion of it) scores higher (``cedes_to``): TotalSegmentator's structures are disjoint, so a voxel the
    model confidently calls liver is not brain. Measured on the test model (15 epochs on the bundled CT): the text
    queries of unlearnt structures are blends of the learnt ones and their stray masks lie on learnt organs
    (brain, lung: all their voxels; heart: 1779 of 1839); a prompt with no taxonomy entry ('banana', or a synonym
    grounding missed) cedes nothing, since its mask on the liver may be right.
A prompt that reaches no structure this way is ``ungrounded``: ``auto`` answers it with its text query and the
report lists its nearest structures with their cosines; ``taxonomy`` refuses it.
Modes (``--grounding``): ``auto`` (the above), ``text`` (always the text query, as the paper's model does),
``taxonomy`` (a prompt that does not resolve to training labels is refused).
Held out (``held_out``, the unseen-prompt benchmark): the evaluated set's prompts and every text of the structures
they name that is not a training prompt of the model (the set's recorded synonyms) are withdrawn from the exact
match and from the nearest-entry candidates, so a prompt is never grounded by finding itself: the grounded column
then measures how grounding generalises, not what the taxonomy stored.
A prompt that names one side is never answered with a label of the other side, and a sided label's mask
cedes the voxels where its twin of the other side scores higher (``twin_queries``: left and right kidney
exclude each other as nnU-Net's argmax would; 'renal organs' is the union of the two ceded masks).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Collection, Dict, FrozenSet, List, Optional, Sequence, Tuple

import torch

from nnunetv2_openvocab.prompts.dataset_prompts import TrainingPrompts
from nnunetv2_openvocab.prompts.definition_route import (DEFINITION, DefinitionIndex, DefinitionMatch,
                                                         reads_like_definition)
from nnunetv2_openvocab.prompts.laterality import OPPOSITE, SIDES, side_of, side_twin, without_side
from nnunetv2_openvocab.prompts.normalisation import prompt_side
from nnunetv2_openvocab.prompts.prompt_text import prompt_identity
from nnunetv2_openvocab.prompts.structure_lookup import find_structure
from nnunetv2_openvocab.prompts.taxonomy import Taxonomy, load_taxonomy

GROUNDING_MODES = ("auto", "text", "taxonomy")
MATCH_THRESHOLD = 0.90
LABEL, UNION, TEXT = "label", "union", "text"


class GroundingError(ValueError):
    """``--grounding taxonomy`` and a prompt the taxonomy does not resolve to training labels."""


def taxonomy_entries(taxonomy: Taxonomy) -> List[Tuple[str, str]]:
    """(text, structure) for every prompt, synonym and held-out synonym of the taxonomy: what grounding embeds."""
    return [(text, s.name) for s in taxonomy.structures.values() for text in [*s.prompts, *s.eval_synonyms]]


def held_out_identities(prompts: Collection[str], taxonomy: Taxonomy, training: TrainingPrompts) -> FrozenSet[str]:
    """Prompt identities grounding must not match for an evaluated set: its prompts, and each text of the structures
    they name exactly (name, prompts, RadLex term, held-out synonyms) unless it is a training prompt of the model."""
    held = {prompt_identity(p) for p in prompts}
    for prompt in prompts:
        named = taxonomy.structure_named(prompt)
        if named is None:
            continue
        s = taxonomy.structure(named)
        held.update(prompt_identity(text) for text in [s.name, *s.prompts, s.radlex_term or "", *s.eval_synonyms]
                    if text and training.seen_label(text) is None)
    return frozenset(held)


@dataclass(frozen=True)
class Grounding:
    prompt: str
    route: str                   # label | union | text
    labels: Tuple[str, ...]      # training labels whose masks answer the prompt (empty on the text route)
    queries: Tuple[str, ...]     # texts whose query masks are united: canonical prompts, or the prompt itself
    structure: Optional[str]     # the taxonomy structure it resolved to, if any
    reason: str
    cedes_to: Tuple[str, ...] = ()  # text route: queries of the labels that cannot share a voxel with the structure
    ungrounded: bool = False     # auto/taxonomy: no route was confident, the text query answers (reported so)
    nearest: Tuple[Tuple[str, float], ...] = ()  # ungrounded: the nearest structures and their cosines
    via: str = ""                # 'definition' when the definition route found the structure

    @property
    def route_label(self) -> str:
        """The route as reports show it: 'label', 'union (via definition)', 'text (ungrounded)'."""
        return self.route + (f" (via {self.via})" if self.via else "") + (" (ungrounded)" if self.ungrounded else "")


class PromptGrounder:
    """Grounds prompts for one model: its labels, their training prompts, and its text encoder (``embed``)."""

    def __init__(self, training: TrainingPrompts, embed: Callable[[List[str]], torch.Tensor],
                 taxonomy: Optional[Taxonomy] = None, match_threshold: float = MATCH_THRESHOLD,
                 held_out: Collection[str] = (), definition_threshold: Optional[float] = None):
        self.taxonomy = taxonomy or load_taxonomy()
        self.training, self.embed, self.match_threshold = training, embed, match_threshold
        self.held_out = held_out_identities(held_out, self.taxonomy, training) if held_out else frozenset()
        self.definition_threshold = definition_threshold  # None: no definition route
        self.definitions = DefinitionIndex(embed, self.held_out)
        label_names = training.label_names
        self.canonical = {label: training.canonical(label) for label in label_names}
        self.label_order = {label: index for index, label in enumerate(label_names)}
        self.twin_queries = {self.canonical[label]: self.canonical[twin] for label in label_names
                             if (twin := side_twin(label, label_names)) is not None}
        self.entries = [(text, structure) for text, structure in taxonomy_entries(self.taxonomy)
                        if prompt_identity(text) not in self.held_out]  # candidates of the nearest match
        # a label is its taxonomy structure by name, else by its canonical prompt
        self.label_of_structure: Dict[str, str] = {}
        for label in label_names:
            structure = (label if label in self.taxonomy
                         else self.taxonomy.structure_named(self.canonical[label]))
            if structure is not None:
                self.label_of_structure.setdefault(structure, label)

    def ground(self, prompts: Sequence[str], mode: str = "auto") -> List[Grounding]:
        if mode not in GROUNDING_MODES:
            raise GroundingError(f"--grounding {mode!r}: expected one of {', '.join(GROUNDING_MODES)}.")
        if mode == "text":
            return [self._text(p, None, "--grounding text: the prompt's own text query") for p in prompts]
        groundings = [self._exact(p) or self._conjunction(p) for p in prompts]
        unresolved = [i for i, g in enumerate(groundings) if g is None]
        if unresolved:
            for i, found in zip(unresolved, self._nearest([prompts[i] for i in unresolved])):
                groundings[i] = found
        refused = [g.prompt for g in groundings if g.route == TEXT]
        if mode == "taxonomy" and refused:
            raise GroundingError(f"--grounding taxonomy: {refused} do not resolve to the model's training labels "
                                 f"through the taxonomy (see prompt_report.md with --grounding auto). Reword them, "
                                 f"or use --grounding auto to answer them with their text query.")
        return groundings

    # ---- resolution ----------------------------------------------------------------------------------------------
    def _exact(self, prompt: str) -> Optional[Grounding]:
        if prompt_identity(prompt) in self.held_out:
            return None
        label = self.training.seen_label(prompt)
        if label is not None:
            return self._labels(prompt, None, [label], f"training prompt of label {label}")
        match = find_structure(prompt, self.taxonomy)
        if match is None:
            return None
        how = "exact match" if match.normalised is None else f"after normalisation ('{match.normalised}')"
        return self.ground_structure(prompt, match.structure, f"taxonomy entry of {match.structure} ({how})")

    def _conjunction(self, prompt: str) -> Optional[Grounding]:
        parts = prompt_identity(prompt).split(" and ")
        if len(parts) < 2:
            return None
        noun = without_side(parts[-1])
        parts = [f"{part} {noun}" if part in SIDES else part for part in parts]
        answers = [self._exact(part) for part in parts]
        if not all(a is not None and a.route != TEXT for a in answers):
            return None
        labels = list(dict.fromkeys(label for a in answers for label in a.labels))
        return self._labels(prompt, None, labels, "; ".join(f"'{part}': {a.reason}" for part, a in zip(parts, answers)))

    def _nearest(self, prompts: List[str]) -> List[Grounding]:
        out = []
        scored = [(prompt, row, *self.nearest_entry(prompt, row))
                  for prompt, row in zip(prompts, self.similarities(prompts))]
        described = self.described([prompt for prompt, _, _, _, cosine in scored if cosine < self.match_threshold])
        for prompt, row, text, structure, cosine in scored:
            if prompt in described:
                match = described[prompt]
                out.append(replace(self.ground_structure(prompt, match.structure, match.reason), via=DEFINITION))
            elif cosine < self.match_threshold:
                nearest = self.nearest_structures(prompt, row)
                listed = ", ".join(f"{name} {score:.2f}" for name, score in nearest)
                out.append(Grounding(prompt, TEXT, (), (prompt,), None,
                                     f"no taxonomy entry within cosine {self.match_threshold:.2f} (nearest "
                                     f"'{text}' of {structure}; nearest structures {listed}){self._no_definition}",
                                     ungrounded=True, nearest=nearest))
            else:
                out.append(self.ground_structure(prompt, structure, f"nearest taxonomy entry '{text}' of {structure} "
                                                              f"(cosine {cosine:.2f} >= {self.match_threshold:.2f})"))
        return out

    @property
    def _no_definition(self) -> str:
        threshold = self.definition_threshold
        return "" if threshold is None else f"; no RadLex definition within cosine {threshold:.2f}"

    def described(self, prompts: List[str]) -> Dict[str, DefinitionMatch]:
        """The definition route's matches of those prompts that read like a definition and reach its threshold."""
        prompts = [prompt for prompt in prompts if reads_like_definition(prompt)]
        if self.definition_threshold is None or not prompts:
            return {}
        found = {}
        for prompt, row in zip(prompts, self.definitions.similarities(prompts)):
            match = self.definitions.best(row, self._same_side_entries(prompt, self.definitions.entries),
                                          self.definition_threshold)
            if match is not None:
                found[prompt] = match
        return found

    def similarities(self, prompts: List[str]) -> torch.Tensor:
        """(prompts, taxonomy entries) cosine similarities in the text encoder's space."""
        texts = [text for text, _ in self.entries]
        vectors = torch.nn.functional.normalize(self.embed([*prompts, *texts]).float(), dim=-1)
        return vectors[:len(prompts)] @ vectors[len(prompts):].T

    def nearest_entry(self, prompt: str, similarities: torch.Tensor) -> Tuple[str, str, float]:
        """(taxonomy text, structure, cosine) of the best entry whose side matches the prompt's: one side named ->
        that side's structures; none or both named -> unsided structures (never one side for 'left and right')."""
        best = max(self._same_side_entries(prompt), key=lambda j: float(similarities[j]))
        return (*self.entries[best], float(similarities[best]))

    def nearest_structures(self, prompt: str, similarities: torch.Tensor, count: int = 3
                           ) -> Tuple[Tuple[str, float], ...]:
        """The ``count`` structures nearest to the prompt (best entry of each, same side rule), best first."""
        best: Dict[str, float] = {}
        for j in self._same_side_entries(prompt):
            structure = self.entries[j][1]
            best[structure] = max(best.get(structure, -1.0), round(float(similarities[j]), 4))
        return tuple(sorted(best.items(), key=lambda item: -item[1])[:count])

    def _same_side_entries(self, prompt: str, entries: Optional[List[Tuple[str, str]]] = None) -> List[int]:
        side = prompt_side(prompt) or "none"
        return [j for j, (_, structure) in enumerate(self.entries if entries is None else entries)
                if self.taxonomy.structure(structure).laterality == side]

    def ground_structure(self, prompt: str, structure: str, why: str) -> Grounding:
        """The structure's training labels (label or union route), else the text route; ``why`` explains the match."""
        labels = [self.label_of_structure[s] for s in
                  self.taxonomy.resolve_to_labels(structure, self.label_of_structure)]
        if not labels:
            disjoint = [label for learnt, label in self.label_of_structure.items()
                        if not self.taxonomy.can_overlap(structure, learnt)]
            disjoint.sort(key=self.label_order.__getitem__)
            cedes = f"; cedes voxels where {', '.join(disjoint)} score higher" if disjoint else ""
            return Grounding(prompt, TEXT, (), (prompt,), structure,
                             f"{why}; not a training label nor a union of training labels{cedes}",
                             tuple(self.canonical[label] for label in disjoint))
        return self._labels(prompt, structure, labels, why)

    def _labels(self, prompt: str, structure: Optional[str], labels: List[str], why: str) -> Grounding:
        side = prompt_side(prompt)
        crossing = [label for label in labels
                    if side and OPPOSITE[side] in (side_of(label), prompt_side(self.canonical[label]))]
        if crossing:  # never answer a sided prompt with the other side's labels
            return self._text(prompt, structure, f"{why}; it would use {crossing} of the other side")
        labels = sorted(labels, key=self.label_order.__getitem__)  # the model's label order, whatever the taxonomy's
        route = LABEL if len(labels) == 1 else UNION
        return Grounding(prompt, route, tuple(labels), tuple(self.canonical[label] for label in labels), structure,
                         why)

    @staticmethod
    def _text(prompt: str, structure: Optional[str], why: str) -> Grounding:
        return Grounding(prompt, TEXT, (), (prompt,), structure, why)
