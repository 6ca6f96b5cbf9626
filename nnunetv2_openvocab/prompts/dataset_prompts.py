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
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from nnunetv2_openvocab.prompts.prompt_text import prompt_identity

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


class TrainingPrompts:
    """The prompts a model trains on: foreground labels in dataset.json order, each with its canonical prompt and
    synonyms. Built from dataset.json (``from_dataset_json``: the one parser of ``text_prompts``) or from a
    model's spec (``from_mapping``); answers "is this prompt seen" by prompt identity (prompt_text)."""

    def __init__(self, labels: Sequence[PromptedLabel]):
        self._set_labels(labels)

    def _set_labels(self, labels: Sequence[PromptedLabel]) -> None:
        self.labels: List[PromptedLabel] = list(labels)
        self._index = {label.name: i for i, label in enumerate(self.labels)}
        # identity -> (label, training prompt); the first label claiming an identity keeps it, as validation allows
        # no prompt on two labels
        self._seen: Dict[str, Tuple[str, str]] = {}
        for label in self.labels:
            for prompt in label.prompts:
                self._seen.setdefault(prompt_identity(prompt), (label.name, prompt))

    @classmethod
    def from_dataset_json(cls, dataset_json: Mapping, label_names: Optional[Sequence[str]] = None,
                          source: str = "dataset.json", skip_unprompted: bool = False) -> "TrainingPrompts":
        """The labels of ``dataset_json`` (or only ``label_names``) with their ``text_prompts``. A label without
        prompts is refused with the fix, or left out with ``skip_unprompted``."""
        values = label_values_by_name(dataset_json["labels"])
        prompts = dataset_json.get(TEXT_PROMPTS_KEY) or {}
        names = list(values) if label_names is None else list(label_names)
        missing = [name for name in names if not prompts.get(name)]
        if missing and not skip_unprompted:
            raise ValueError(f"{source} [{TEXT_PROMPTS_KEY}]: no prompt for label(s) {missing}. Add "
                             f'"{TEXT_PROMPTS_KEY}": {{"{missing[0]}": ["{missing[0].replace("_", " ")}"], ...}}.')
        return cls([PromptedLabel(name, values[name], tuple(prompts[name])) for name in names if name not in missing])

    @classmethod
    def from_mapping(cls, text_prompts: Mapping[str, Sequence[str]],
                     label_names: Optional[Sequence[str]] = None) -> "TrainingPrompts":
        """From ``{label: [canonical, synonym, ...]}`` (a model spec's prompts; voxel values unknown there)."""
        names = list(text_prompts) if label_names is None else list(label_names)
        return cls([PromptedLabel(name, (), tuple(text_prompts[name])) for name in names])

    def canonical_only(self) -> "TrainingPrompts":
        """The same labels (and annotations), each label prompted by its canonical prompt alone."""
        narrowed = copy.copy(self)
        narrowed._set_labels([replace(label, prompts=label.prompts[:1]) for label in self.labels])
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

    def canonical(self, label: str) -> str:
        return self.labels[self._index[label]].canonical_prompt

    def seen_as(self, prompt: str) -> Optional[Tuple[str, str]]:
        """(label, training prompt) when ``prompt`` is a training prompt (case, spacing and punctuation aside)."""
        return self._seen.get(prompt_identity(prompt))

    def seen_label(self, prompt: str) -> Optional[str]:
        """The label whose training prompt ``prompt`` is, else None."""
        seen = self.seen_as(prompt)
        return seen[0] if seen else None

    def is_seen(self, prompt: str) -> bool:
        return self.seen_label(prompt) is not None


class DatasetPrompts(TrainingPrompts):
    """A dataset.json's training prompts plus its partial annotations (``annotated_labels``), for the trainer."""

    def __init__(self, dataset_json: Mapping):
        super().__init__(TrainingPrompts.from_dataset_json(dataset_json).labels)
        self._annotated: Dict[str, Tuple[int, ...]] = {
            case: tuple(sorted(self._index[name] for name in names))
            for case, names in dataset_json.get(ANNOTATED_LABELS_KEY, {}).items()
        }

    def annotated_label_indices(self, case_identifier: str) -> Tuple[int, ...]:
        """Indices (into ``labels``) of the structures annotated in this case; all when not listed."""
        return self._annotated.get(case_identifier, tuple(range(len(self.labels))))


def foreground_label_names(labels: Mapping[str, object]) -> List[str]:
    """nnU-Net ``labels`` dict -> the foreground label names (every label but background), in order."""
    return [name for name in labels if name != BACKGROUND]


def label_values_by_name(labels: Mapping[str, object]) -> Dict[str, Tuple[int, ...]]:
    """nnU-Net ``labels`` dict -> {name: voxel values}; region labels (lists) become their union."""
    foreground = set(foreground_label_names(labels))
    return {name: tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else (int(value),)
            for name, value in labels.items() if name in foreground}
