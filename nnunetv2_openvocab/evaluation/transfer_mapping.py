"""Which of another dataset's labels a trained model can be asked for (OpenVocabCT Tables IX/X: a TotalSegmentator
model tested on FLARE22 and SegTHOR without fine-tuning).

Each target label is mapped to a taxonomy structure by its name (the converters name labels by the taxonomy's
canonical names), else by the target's own canonical prompt (``text_prompts[label][0]``), through the one lookup
``structure_lookup.find_structure``. It is prompted with the taxonomy's canonical prompt of that structure
(``default_prompt``: "right kidney" for kidney_right). The rule for "the model can be asked": the taxonomy resolves
the structure to the model's own training labels (``Taxonomy.resolve_to_labels``): the structure itself was a
training label ("learnt"), or all its parts were ("parts learnt": SegTHOR's heart against TotalSegmentator v1's
myocardium and four chambers, the paper's "Heart*", prompted "heart" as the paper does). Every other label is
listed as unmappable with its reason, never silently dropped: no taxonomy structure, or a structure the model never
learnt (neither itself nor all its parts).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Mapping, Optional, Sequence

from nnunetv2_openvocab.evaluation.prompt_sets import structure_label_names
from nnunetv2_openvocab.prompts.dataset_prompts import TrainingPrompts
from nnunetv2_openvocab.prompts.structure_lookup import find_structure
from nnunetv2_openvocab.prompts.taxonomy import Taxonomy, load_taxonomy

LEARNT, PARTS_LEARNT = "learnt", "parts learnt"
NO_STRUCTURE, NOT_LEARNT = "no taxonomy structure", "not learnt by the model"


@dataclass(frozen=True)
class LabelMapping:
    label: str                       # the target dataset's label name
    structure: Optional[str]         # the taxonomy structure it maps to; None when none
    prompt: Optional[str]            # the structure's canonical prompt (what the model is asked); None if unmappable
    status: str                      # LEARNT, PARTS_LEARNT, NO_STRUCTURE or NOT_LEARNT
    model_labels: tuple = ()         # the model's training labels the structure resolves to

    @property
    def mappable(self) -> bool:
        return self.status in (LEARNT, PARTS_LEARNT)

    def as_dict(self) -> Dict:
        return {**asdict(self), "model_labels": list(self.model_labels), "mappable": self.mappable}


def _structure_of(label: str, target_prompts: Mapping[str, tuple], taxonomy: Taxonomy) -> Optional[str]:
    for text in (label, *target_prompts.get(label, ())[:1]):
        match = find_structure(text, taxonomy)
        if match is not None:
            return match.structure
    return None


def model_structures(model_label_names: Sequence[str], taxonomy: Taxonomy) -> Dict[str, str]:
    """{structure: model label} for the model's labels the taxonomy names (a TotalSegmentator model: all of them)."""
    named = {}
    for label in model_label_names:
        match = find_structure(label, taxonomy)
        if match is not None:
            named.setdefault(match.structure, label)
    return named


def map_labels(target_dataset: Mapping, model_dataset: Mapping,
               taxonomy: Optional[Taxonomy] = None) -> List[LabelMapping]:
    """One ``LabelMapping`` per structure label of ``target_dataset`` (its dataset.json), in its label order, for a
    model trained on ``model_dataset`` (the model folder's dataset.json)."""
    taxonomy = taxonomy or load_taxonomy()
    learnt = model_structures(structure_label_names(model_dataset), taxonomy)
    target_prompts = TrainingPrompts.from_dataset_json(target_dataset, skip_unprompted=True).prompts_by_label
    mappings = []
    for label in structure_label_names(target_dataset):
        structure = _structure_of(label, target_prompts, taxonomy)
        if structure is None:
            mappings.append(LabelMapping(label, None, None, NO_STRUCTURE))
            continue
        resolved = taxonomy.resolve_to_labels(structure, learnt)
        if not resolved:
            mappings.append(LabelMapping(label, structure, None, NOT_LEARNT))
            continue
        status = LEARNT if resolved == [structure] else PARTS_LEARNT
        mappings.append(LabelMapping(label, structure, taxonomy.structure(structure).default_prompt, status,
                                     tuple(learnt[name] for name in resolved)))
    return mappings


def transfer_prompt_set(mappings: Sequence[LabelMapping], target_name: str) -> Dict:
    """The mappable labels as an evaluation prompt set (``prompt_sets`` format): canonical prompt -> target label."""
    prompts = [{"prompt": m.prompt, "targets": [m.label], "kind": m.status} for m in mappings if m.mappable]
    if not prompts:
        raise ValueError(f"No label of {target_name} maps to a structure the model learnt: "
                         f"{[(m.label, m.status) for m in mappings]}. Evaluate a model trained on these structures.")
    return {"name": f"transfer to {target_name}", "description": "target labels by the taxonomy's canonical names, "
            "prompted with the taxonomy's canonical prompt", "prompts": prompts}
