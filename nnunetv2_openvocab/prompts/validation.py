"""Validate a raw nnU-Net dataset for open-vocabulary training, reporting every problem at once.

Each problem names the file, the field and the fix. Checks: nnU-Net's structure (dataset.json keys, label
values, imagesTr/labelsTr pairing), ``text_prompts`` (every label prompted, non-empty strings, no prompt
shared by two labels, no two labels whose prompts share an output file name, no unknown labels) and
``annotated_labels`` (known cases and labels).
The validator never raises on malformed content: any JSON text yields problems, not a traceback. Duplicate
keys (which json.loads would silently resolve to the last value) and nesting too deep to parse are problems
too.
"""
from __future__ import annotations

import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from nnunetv2_openvocab.prompts.dataset_prompts import ANNOTATED_LABELS_KEY, BACKGROUND, TEXT_PROMPTS_KEY
from nnunetv2_openvocab.prompts.prompt_text import PromptTextError, prompt_identity, prompt_slug
from nnunetv2_openvocab.json_input import JsonInputError, read_json_file
from nnunetv2_openvocab.user_errors import UserError

REQUIRED_KEYS = ("channel_names", "labels", "numTraining", "file_ending")
MAX_LABEL_VALUE = 32767  # nnU-Net stores segmentations as int16 at most
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 60, 60


def _show(value) -> str:
    """A found value for a message: bounded in depth and length."""
    return _SHORT.repr(value)


@dataclass(frozen=True)
class DatasetProblem:
    file: str
    field: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file} [{self.field}]: {self.problem} Fix: {self.fix}"


class DatasetValidationError(UserError, ValueError):
    def __init__(self, problems: List[DatasetProblem]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the dataset:\n{lines}")


class _Collector:
    def __init__(self, file: Path):
        self.file = str(file)
        self.problems: List[DatasetProblem] = []

    def add(self, field: str, problem: str, fix: str) -> None:
        self.problems.append(DatasetProblem(self.file, field, problem, fix))


def _label_values(name: str, value, report: _Collector) -> Optional[List[int]]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_LABEL_VALUE
                             for v in values):
        report.add(f"labels.{name}", f"value {_show(value)} is not a non-negative integer up to {MAX_LABEL_VALUE} "
                                     f"(or a list of them).", "Give each label an integer voxel value, e.g. \"liver\": 1.")
        return None
    return values


def _check_labels(dataset: dict, report: _Collector) -> Dict[str, List[int]]:
    labels = dataset.get("labels")
    if not isinstance(labels, dict):
        report.add("labels", f"must be an object of name -> value, found {type(labels).__name__}.",
                   "Write \"labels\": {\"background\": 0, \"liver\": 1, ...}.")
        return {}
    if labels.get(BACKGROUND) != 0:
        report.add("labels.background", "nnU-Net requires \"background\": 0.", "Add \"background\": 0 to labels.")
    foreground = {}
    for name, value in labels.items():
        values = _label_values(name, value, report)
        if values is not None and name != BACKGROUND:
            foreground[name] = values
    single = [v[0] for v in foreground.values() if len(v) == 1]
    duplicated = sorted({v for v in single if single.count(v) > 1})
    if duplicated:
        report.add("labels", f"voxel value(s) {duplicated} are used by more than one label.",
                   "Give every label its own value (use a list only for nnU-Net region labels).")
    if any(len(v) > 1 for v in foreground.values()) and not isinstance(dataset.get("regions_class_order"), list):
        report.add("regions_class_order", "region labels (lists of values) need regions_class_order.",
                   "Add \"regions_class_order\": [...] as nnU-Net documents for region-based training.")
    return foreground


def _check_structure(folder: Path, dataset: dict, report: _Collector) -> List[str]:
    for key in REQUIRED_KEYS:
        if key not in dataset:
            report.add(key, "required nnU-Net key is missing.", f"Add \"{key}\" to dataset.json (see nnU-Net's dataset_format.md).")
    num_training = dataset.get("numTraining")
    if "numTraining" in dataset and (not isinstance(num_training, int) or isinstance(num_training, bool)):
        report.add("numTraining", f"must be an integer, found {_show(num_training)}.",
                   "Set \"numTraining\" to the number of label files in labelsTr, e.g. \"numTraining\": 120.")
    ending = dataset.get("file_ending")
    channels = dataset.get("channel_names", dataset.get("modality"))
    if not isinstance(ending, str) or not isinstance(channels, dict) or not channels:
        if "file_ending" in dataset and not isinstance(ending, str):
            report.add("file_ending", f"must be a string such as \".nii.gz\", found {_show(ending)}.", "Set \"file_ending\": \".nii.gz\".")
        if "channel_names" in dataset and (not isinstance(channels, dict) or not channels):
            report.add("channel_names", f"must be a non-empty object, found {_show(channels)}.", "Set \"channel_names\": {\"0\": \"CT\"}.")
        return []
    if not all(str(c).isascii() and str(c).isdigit() for c in channels):  # '²'.isdigit() is True, int('²') fails
        report.add("channel_names", f"keys must be channel indices \"0\", \"1\", ..., found {sorted(map(str, channels))}.",
                   "Set \"channel_names\": {\"0\": \"CT\"}.")
        return []
    for channel, name in channels.items():
        if not isinstance(name, str) or not name.strip():
            report.add(f"channel_names.{channel}", f"must be a channel name such as \"CT\", found {_show(name)}.",
                       f"Set \"channel_names\": {{\"{channel}\": \"CT\"}}.")
    labels_dir, images_dir = folder / "labelsTr", folder / "imagesTr"
    if not labels_dir.is_dir() or not images_dir.is_dir():
        report.add("imagesTr/labelsTr", f"folders missing in {folder}.", "Put training images in imagesTr and label maps in labelsTr.")
        return []
    cases = sorted(p.name[: -len(ending)] for p in labels_dir.iterdir() if p.name.endswith(ending))
    if not cases:
        report.add("labelsTr", f"holds no label file ending in {ending!r}: the dataset has 0 training cases.",
                   f"Put each case's label map in labelsTr/<case>{ending} and its image(s) in imagesTr.")
    num_training = dataset.get("numTraining")
    if isinstance(num_training, int) and not isinstance(num_training, bool) and num_training != len(cases):
        report.add("numTraining", f"says {_show(num_training)} but labelsTr has {len(cases)} label files.",
                   f"Set \"numTraining\": {len(cases)}.")
    for case in cases:
        missing = [c for c in sorted(channels, key=str) if not (images_dir / f"{case}_{int(c):04d}{ending}").is_file()]
        if missing:
            report.add("imagesTr", f"case {_show(case)} lacks image channel(s) {missing}.",
                       f"Add imagesTr/{case}_XXXX{ending} for each channel in channel_names.")
    return cases


def _check_prompts(dataset: dict, foreground: Dict[str, List[int]], report: _Collector) -> None:
    prompts = dataset.get(TEXT_PROMPTS_KEY)
    if not isinstance(prompts, dict):
        found = "nothing" if prompts is None else type(prompts).__name__
        report.add(TEXT_PROMPTS_KEY, f"must be an object of label name -> list of prompts, found {found}.",
                   "Add \"text_prompts\": {\"liver\": [\"liver\", \"hepatic parenchyma\"], ...}.")
        return
    owner: Dict[str, str] = {}
    file_owner: Dict[str, tuple] = {}  # slug -> (label, prompt)
    for name in foreground:
        if name not in prompts:
            report.add(f"{TEXT_PROMPTS_KEY}.{name}", "label has no prompts.", f"Add \"{name}\": [\"<canonical prompt>\", ...].")
    for name, label_prompts in prompts.items():
        field = f"{TEXT_PROMPTS_KEY}.{name}"
        if name not in foreground:
            report.add(field, f"prompts given for {_show(name)}, which is not a foreground label.",
                       "Remove it or add the label to labels (names must match exactly).")
        if not isinstance(label_prompts, list) or not label_prompts:
            report.add(field, f"must be a non-empty list of strings, found {_show(label_prompts)}.",
                       "Give at least one prompt; the first is the canonical one.")
            continue
        for i, prompt in enumerate(label_prompts):
            if not isinstance(prompt, str) or not prompt.strip():
                report.add(f"{field}[{i}]", f"prompt {_show(prompt)} is empty or not a string.", "Use non-empty text such as \"liver\".")
                continue
            key = prompt_identity(prompt)
            if key in owner and owner[key] != name:
                report.add(f"{field}[{i}]", f"prompt {_show(prompt)} is also used by label {_show(owner[key])}.",
                           "Each prompt must identify one label: drop it from one of them.")
                continue
            owner.setdefault(key, name)
            _check_file_name(f"{field}[{i}]", name, prompt, file_owner, report)


def _check_file_name(field: str, label: str, prompt: str, file_owner: Dict[str, tuple], report: _Collector) -> None:
    """Predicted masks are saved per prompt slug: prompts of two labels must not share one file name."""
    try:
        slug = prompt_slug(prompt)
    except PromptTextError as error:
        report.add(field, str(error), "Use a prompt with letters or digits.")
        return
    other_label, other_prompt = file_owner.setdefault(slug, (label, prompt))
    if other_label != label:
        report.add(field, f"prompt {prompt!r} and prompt {other_prompt!r} of label {other_label!r} would both be "
                          f"saved as <case>_{slug}.nii.gz.", "Reword one of them so that their letters and digits differ.")


def _check_annotated(dataset: dict, foreground: Dict[str, List[int]], cases: List[str], report: _Collector) -> None:
    if ANNOTATED_LABELS_KEY not in dataset:
        return
    annotated = dataset[ANNOTATED_LABELS_KEY]
    if not isinstance(annotated, dict):
        report.add(ANNOTATED_LABELS_KEY, f"must be an object case -> [label names], found {type(annotated).__name__}.",
                   "Write \"annotated_labels\": {\"case_001\": [\"liver\"], ...} or remove the key.")
        return
    known_cases = set(cases)
    for case, names in annotated.items():
        field = f"{ANNOTATED_LABELS_KEY}.{case}"
        if cases and case not in known_cases:
            report.add(field, f"case {_show(case)} is not in labelsTr.", "Remove the entry or fix the case identifier.")
        if not isinstance(names, list) or not names:
            report.add(field, f"must be a non-empty list of label names, found {_show(names)}.",
                       "List the labels annotated in this case, or drop the case from the dataset.")
            continue
        for name in names:
            if not isinstance(name, str) or name not in foreground:
                report.add(field, f"{_show(name)} is not a foreground label name.", f"Use names from labels: {sorted(foreground)}.")


def validate_dataset_json(dataset: object, folder: Path, file: Path) -> List[DatasetProblem]:
    report = _Collector(file)
    if not isinstance(dataset, dict):
        report.add("<root>", f"dataset.json must hold a JSON object, found {type(dataset).__name__}.",
                   "Follow nnU-Net's dataset.json format.")
        return report.problems
    foreground = _check_labels(dataset, report)
    cases = _check_structure(folder, dataset, report)
    _check_prompts(dataset, foreground, report)
    _check_annotated(dataset, foreground, cases, report)
    return report.problems


def validate_dataset(folder: str | Path) -> List[DatasetProblem]:
    """All problems of the raw dataset in ``folder`` (empty list: ready for open-vocabulary training)."""
    folder = Path(folder)
    file = folder / "dataset.json"
    if not file.is_file():
        return [DatasetProblem(str(file), "<file>", "dataset.json not found.", "Create it as nnU-Net documents.")]
    duplicates: List[str] = []
    try:
        dataset = read_json_file(file, object_pairs_hook=_DuplicateKeyRecorder(duplicates))
    except JsonInputError as error:
        return [DatasetProblem(str(file), "<file>", f"{error}",
                               "Write dataset.json as nnU-Net documents it (a few levels of objects and lists).")]
    if duplicates:
        return [DatasetProblem(str(file), key, "the key appears more than once in one object (JSON keeps only the "
                                               "last value).", "Keep one entry per key.") for key in duplicates]
    return validate_dataset_json(dataset, folder, file)


class _DuplicateKeyRecorder:
    """``object_pairs_hook`` for json.loads: builds each object, noting keys that occur twice in it."""

    def __init__(self, duplicates: List[str]):
        self.duplicates = duplicates

    def __call__(self, pairs: List[tuple]) -> dict:
        keys = [key for key, _ in pairs]
        self.duplicates.extend(sorted({key for key in keys if keys.count(key) > 1}))
        return dict(pairs)


def require_valid_dataset(folder: str | Path) -> None:
    problems = validate_dataset(folder)
    if problems:
        raise DatasetValidationError(problems)
