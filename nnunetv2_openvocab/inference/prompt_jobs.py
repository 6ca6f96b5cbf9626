"""Which prompts to predict for which image: prompt validation and the ``--prompts-file`` format.

Prompts file (JSON), for batch runs with different prompts per image::

    {"jobs": [
        {"image": "scans/ct_001.nii.gz", "prompts": ["liver", "renal organs"]},
        {"image": "dicom/patient_7", "case": "patient_7", "prompts": ["spleen"]},
        {"image": "scans/ct_002.nii.gz"}
    ]}

``image``: an image file or a DICOM series folder, absolute or relative to the prompts file's folder.
``case`` (optional): the output name; default the image name without ending and channel suffix (``_0000``).
``prompts`` (optional): default the run's ``--prompts``, else the model's canonical training prompts.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from nnunetv2_openvocab.inference.input_images import CaseInput, find_cases
from nnunetv2_openvocab.json_input import read_json_file
from nnunetv2_openvocab.prompts.prompt_text import PromptTextError, clean_prompt, prompt_slug, slug_collisions
from nnunetv2_openvocab.user_errors import UserError

PROMPTS_FILE_EXAMPLE = ('{"jobs": [{"image": "ct_001.nii.gz", "prompts": ["liver", "renal organs"]}, '
                        '{"image": "dicom/patient_7", "case": "patient_7", "prompts": ["spleen"]}]}')


class PromptError(UserError, ValueError):
    """An empty, unusable or colliding prompt, or a malformed prompts file."""


@dataclass(frozen=True)
class PredictionJob:
    case: CaseInput
    prompts: Tuple[str, ...]


def validate_prompts(prompts: Sequence[str], where: str = "--prompts") -> Tuple[str, ...]:
    """Stripped prompts, in order, without repeats; refuses empty prompts and prompts sharing a file name."""
    if isinstance(prompts, str) or not prompts:
        raise PromptError(f"{where}: expected a non-empty list of prompts, got {prompts!r}. "
                          f"Example: --prompts liver \"renal organs\".")
    try:
        cleaned = tuple(dict.fromkeys(clean_prompt(prompt) for prompt in prompts))
        for prompt in cleaned:
            prompt_slug(prompt)
    except PromptTextError as error:
        raise PromptError(f"{where}: {error}") from None
    for first, later, slug in slug_collisions(cleaned):
        raise PromptError(f"{where}: prompts {first!r} and {later!r} would both be saved as "
                          f"*_{slug}.nii.gz. Keep one of them or reword one.")
    return cleaned


def _job(entry: object, index: int, base: Path, file_ending: str, default_prompts: Tuple[str, ...],
         source: Path, known: Dict[tuple, object]) -> PredictionJob:
    """One job; ``known`` remembers images and prompt lists already checked (a file of 200,000 jobs mostly repeats
    a few), so each is found and validated once."""
    where = f"{source} [jobs[{index}]]"
    if not isinstance(entry, Mapping) or not isinstance(entry.get("image"), str):
        raise PromptError(f'{where}: expected an object with an "image" path, got {entry!r}. '
                          f"Format: {PROMPTS_FILE_EXAMPLE}")
    image = Path(entry["image"])
    image = image if image.is_absolute() else base / image
    if ("image", entry["image"]) not in known:
        if not image.exists():
            raise PromptError(f"{where}.image: {image} does not exist. Paths are relative to {base}.")
        known["image", entry["image"]] = find_cases(image, file_ending)
    cases = known["image", entry["image"]]
    if len(cases) != 1:
        raise PromptError(f"{where}.image: {image} holds {len(cases)} cases; point each job to one image file or "
                          f"one DICOM series folder.")
    case = cases[0]
    if "case" in entry:
        if not isinstance(entry["case"], str) or not entry["case"].strip():
            raise PromptError(f"{where}.case: expected a non-empty name, got {entry['case']!r}.")
        case = CaseInput(entry["case"].strip(), case.sources, case.is_dicom)
    if "prompts" not in entry:
        return PredictionJob(case, default_prompts)
    listed = entry["prompts"]
    key = ("prompts", *listed) if isinstance(listed, list) and all(isinstance(p, str) for p in listed) else None
    if key not in known:
        prompts = validate_prompts(listed, f"{where}.prompts")
        if key is None:
            return PredictionJob(case, prompts)
        known[key] = prompts
    return PredictionJob(case, known[key])


def load_prompts_file(path: str | Path, file_ending: str, default_prompts: Sequence[str]) -> List[PredictionJob]:
    """Jobs of a prompts file; every error names the file, the entry and the fix."""
    path = Path(path)
    content = read_json_file(path, f"Expected: {PROMPTS_FILE_EXAMPLE}", what="Prompts file")
    if not isinstance(content, Mapping) or not isinstance(content.get("jobs"), list) or not content["jobs"]:
        raise PromptError(f'{path}: expected an object with a non-empty "jobs" list. Format: {PROMPTS_FILE_EXAMPLE}')
    known: Dict[tuple, object] = {}
    jobs = [_job(entry, i, path.parent, file_ending, tuple(default_prompts), path, known)
            for i, entry in enumerate(content["jobs"])]
    counts = Counter(job.case.case_id for job in jobs)
    repeated = sorted(case for case, count in counts.items() if count > 1)
    if repeated:
        raise PromptError(f"{path}: several jobs write case {repeated}; give them distinct \"case\" names.")
    return jobs


def jobs_for_cases(cases: Sequence[CaseInput], prompts: Sequence[str]) -> List[PredictionJob]:
    return [PredictionJob(case, tuple(prompts)) for case in cases]


def all_prompts(jobs: Sequence[PredictionJob], extra: Optional[Sequence[str]] = None) -> List[str]:
    """Every distinct prompt of a run, in first-seen order."""
    return list(dict.fromkeys([*(extra or ()), *(p for job in jobs for p in job.prompts)]))
