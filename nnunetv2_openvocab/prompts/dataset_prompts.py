"""Text prompts and partial annotations stored in an nnU-Net dataset.json.

Format (two optional keys next to nnU-Net's own ``labels``; ``labels`` stays exactly as nnU-Net wants it):

``text_prompts``: ``{label_name: [canonical_prompt, synonym, ...]}`` for every foreground label name.
    The first prompt is the canonical one (used for validation and as the default at inference), the
    others are synonyms sampled during training.

``annotated_labels``: ``{case_identifier: [label_name, ...]}``, optional. A case listed here was annotated
    for exactly those labels; every other label is *unknown* in that case (never background) and gets no
    loss (masked back-propagation). Cases not listed are fully annotated. Background is implicit.

Label values may be an int or, for nnU-Net region labels (overlapping structures such as tumour inside
kidney), a list of ints: the structure is the union of those voxel values.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Dict, List, Mapping, Tuple

TEXT_PROMPTS_KEY = "text_prompts"
ANNOTATED_LABELS_KEY = "annotated_labels"
BACKGROUND = "background"


@dataclass(frozen=True)
class PromptedLabel:
    """One foreground structure: its name, the voxel values that make it up, and its prompts."""

    name: str
    values: Tuple[int, ...]
    prompts: Tuple[str, ...]

    @property
    def canonical_prompt(self) -> str:
        return self.prompts[0]


class DatasetPrompts:
    """Read-only view of the prompt-related parts of a (validated) dataset.json."""

    def __init__(self, dataset_json: Mapping):
        self.labels: List[PromptedLabel] = []
        prompts = dataset_json[TEXT_PROMPTS_KEY]
        for name, values in label_values_by_name(dataset_json["labels"]).items():
            self.labels.append(PromptedLabel(name, values, tuple(prompts[name])))
        self._index = {label.name: i for i, label in enumerate(self.labels)}
        self._annotated: Dict[str, Tuple[int, ...]] = {
            case: tuple(sorted(self._index[name] for name in names))
            for case, names in dataset_json.get(ANNOTATED_LABELS_KEY, {}).items()
        }

    def canonical_only(self) -> "DatasetPrompts":
        """The same labels and annotations, each label prompted by its canonical prompt alone."""
        narrowed = copy.copy(self)
        narrowed.labels = [replace(label, prompts=label.prompts[:1]) for label in self.labels]
        return narrowed

    @property
    def label_names(self) -> List[str]:
        return [label.name for label in self.labels]

    @property
    def canonical_prompts(self) -> List[str]:
        return [label.canonical_prompt for label in self.labels]

    @property
    def prompts_by_label(self) -> Dict[str, Tuple[str, ...]]:
        return {label.name: label.prompts for label in self.labels}

    @property
    def all_prompts(self) -> List[str]:
        """Every prompt of every label, in label order (canonical first)."""
        return [p for label in self.labels for p in label.prompts]

    def label_index(self, name: str) -> int:
        return self._index[name]

    def annotated_label_indices(self, case_identifier: str) -> Tuple[int, ...]:
        """Indices (into ``labels``) of the structures annotated in this case; all when not listed."""
        return self._annotated.get(case_identifier, tuple(range(len(self.labels))))

    def is_partially_labelled(self) -> bool:
        return bool(self._annotated)


def label_values_by_name(labels: Mapping[str, object]) -> Dict[str, Tuple[int, ...]]:
    """nnU-Net ``labels`` dict -> {name: voxel values}; region labels (lists) become their union."""
    out = {}
    for name, value in labels.items():
        if name == BACKGROUND:
            continue
        out[name] = tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else (int(value),)
    return out
