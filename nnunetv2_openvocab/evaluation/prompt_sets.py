"""Which prompts to evaluate and which reference labels each one targets.

Prompt-set file format (JSON; the unseen-prompt benchmarks ship in it)::

    {"name": "merged_organs", "description": "...",
     "prompts": [{"prompt": "renal organs", "targets": ["kidney_left", "kidney_right"], "kind": "merged"},
                 {"prompt": "liver lesion", "targets": ["liver_tumor"], "kind": "lesion"}]}

``targets`` are label names of the dataset.json; a prompt's reference mask is the union of their voxel
values. ``kind`` is free text copied to the outputs; an entry with ``"kind": "lesion"`` or
``"category": "lesion"`` also gets patient-level detection scores.

Without a file, every label's canonical prompt (``text_prompts[name][0]``) targets that label alone.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence, Tuple, Union

from nnunetv2_openvocab.json_input import read_json_file
from nnunetv2_openvocab.prompts.dataset_prompts import TrainingPrompts, label_values_by_name
from nnunetv2_openvocab.prompts.prompt_text import clean_prompt, slug_collisions

IGNORE_LABEL = "ignore"  # nnU-Net's reserved label name for unannotated voxels
LESION = "lesion"


@dataclass(frozen=True)
class EvaluationPrompt:
    prompt: str
    targets: Tuple[str, ...]
    kind: str = "label"
    is_lesion: bool = False


@dataclass(frozen=True)
class PromptSet:
    name: str
    description: str
    prompts: Tuple[EvaluationPrompt, ...]

    @property
    def prompt_texts(self) -> Tuple[str, ...]:
        return tuple(p.prompt for p in self.prompts)


def structure_label_names(dataset_json: Mapping) -> Tuple[str, ...]:
    """Foreground label names that are structures (not background, not nnU-Net's ``ignore``)."""
    return tuple(name for name in label_values_by_name(dataset_json["labels"]) if name != IGNORE_LABEL)


def default_prompt_set(dataset_json: Mapping, source: str = "dataset.json") -> PromptSet:
    """One prompt per label: its canonical text prompt, targeting that label."""
    try:
        training = TrainingPrompts.from_dataset_json(dataset_json, structure_label_names(dataset_json), source)
    except ValueError as error:
        raise ValueError(f"{error} Or pass a prompt-set file (--prompts-file) that names the prompts and their target "
                         f"labels.") from None
    prompts = tuple(EvaluationPrompt(training.canonical(name), (name,)) for name in training.label_names)
    return _checked(PromptSet("canonical", "canonical prompt of every label", prompts), source)


def _parse_entry(entry: object, index: int, label_names: Sequence[str], source: str) -> EvaluationPrompt:
    where = f"{source} [prompts[{index}]]"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: expected an object, found {type(entry).__name__}. "
                         'Write {"prompt": "renal organs", "targets": ["kidney_left", "kidney_right"]}.')
    prompt, targets = entry.get("prompt"), entry.get("targets")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"{where}.prompt: expected a non-empty string, found {prompt!r}. Give the prompt text.")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise ValueError(f"{where}.targets: expected a non-empty list of label names, found {targets!r}. "
                         f'Write e.g. "targets": ["{label_names[0] if label_names else "liver"}"].')
    unknown = [t for t in targets if t not in label_names]
    if unknown:
        raise ValueError(f"{where}.targets: unknown label(s) {unknown} for prompt {prompt!r}. "
                         f"Use label names from dataset.json 'labels': {list(label_names)}.")
    kind = str(entry.get("kind", "label"))
    is_lesion = LESION in (kind, entry.get("category"))
    return EvaluationPrompt(clean_prompt(prompt), tuple(dict.fromkeys(targets)), kind, is_lesion)


def parse_prompt_set(content: object, label_names: Sequence[str], source: str = "prompt set") -> PromptSet:
    """Validate an already-loaded prompt-set object; errors name ``source``, the field and the fix."""
    if not isinstance(content, Mapping) or not isinstance(content.get("prompts"), list) or not content["prompts"]:
        raise ValueError(f'{source}: expected an object with a non-empty "prompts" list, e.g. '
                         '{"name": "merged", "prompts": [{"prompt": "renal organs", '
                         '"targets": ["kidney_left", "kidney_right"], "kind": "merged"}]}.')
    prompts = tuple(_parse_entry(e, i, label_names, source) for i, e in enumerate(content["prompts"]))
    name = str(content.get("name", Path(source).stem))
    return _checked(PromptSet(name, str(content.get("description", "")), prompts), source)


def load_prompt_set(source: Union[str, Path, Mapping], label_names: Sequence[str]) -> PromptSet:
    """Prompt set from a JSON file path or an already-loaded dict."""
    if isinstance(source, Mapping):
        return parse_prompt_set(source, label_names)
    path = Path(source)
    content = read_json_file(path, "Check the --prompts-file path; the expected format is in the --help epilog.",
                             what="Prompt-set file")
    return parse_prompt_set(content, label_names, str(path))


def mark_detection_prompts(prompt_set: PromptSet, detection_prompts: Sequence[str]) -> PromptSet:
    """Flag the named prompts (exact text) as lesion prompts that get detection scores."""
    unknown = [p for p in detection_prompts if p not in prompt_set.prompt_texts]
    if unknown:
        raise ValueError(f"--detection-prompts {unknown} are not among the evaluated prompts "
                         f"{list(prompt_set.prompt_texts)}. Give the exact prompt text.")
    wanted = set(detection_prompts)
    prompts = tuple(replace(p, is_lesion=True) if p.prompt in wanted else p for p in prompt_set.prompts)
    return replace(prompt_set, prompts=prompts)


def _checked(prompt_set: PromptSet, source: str) -> PromptSet:
    """Two prompts with one file-name slug would read the same prediction file: refuse them."""
    for first, later, slug in slug_collisions(p.prompt for p in prompt_set.prompts):
        raise ValueError(f"{source}: prompts {first!r} and {later!r} share the file name slug "
                         f"{slug!r}, so their predictions cannot be told apart. Keep only one of them.")
    return prompt_set
