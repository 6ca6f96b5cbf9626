"""Read the caption manifest and split it into training and held-out validation volumes.

``manifest.jsonl`` (written by caption curation and the CT-RATE converter) holds one JSON object per
line: ``{"volume": path, "report": text, "captions": [text, ...]}``. Relative volume paths are
relative to the manifest's folder; captions may be empty.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


@dataclass(frozen=True)
class ManifestEntry:
    volume: str  # absolute path
    report: str
    captions: tuple[str, ...]
    name: str  # the volume as written in the manifest; keys the validation split


def _field(record: dict, name: str, kind: type, where: str):
    value = record.get(name)
    if not isinstance(value, kind):
        raise ValueError(f"{where}: field {name!r} must be a {kind.__name__}, found {value!r}. Each line needs "
                         f'{{"volume": path, "report": text, "captions": [text, ...]}}.')
    return value


def read_manifest(path: str | Path) -> list[ManifestEntry]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Manifest {path} does not exist; write it with nnUNetv2_openvocab_curate_captions "
                                f"or the CT-RATE converter.")
    entries, seen = [], set()
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {line_number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where} is not valid JSON ({error}).") from error
        name = _field(record, "volume", str, where)
        volume = os.path.abspath(os.path.join(path.parent, name))
        if volume in seen:
            raise ValueError(f"{where}: volume {volume} is listed twice; keep one line per volume.")
        seen.add(volume)
        captions = _field(record, "captions", list, where)
        if not all(isinstance(caption, str) for caption in captions):
            raise ValueError(f"{where}: field 'captions' must be a list of strings, found {captions!r}.")
        entries.append(ManifestEntry(volume, _field(record, "report", str, where), tuple(captions), name))
    if not entries:
        raise ValueError(f"Manifest {path} has no entries.")
    return entries


# "Findings: ...\nImpression: ..." as the CT-RATE converter writes reports; the section ends at the next header
FINDINGS_SECTION = re.compile(r"(?:^|\n)\s*findings:[ \t]*(.*?)(?=\n\s*impression:|\Z)", re.IGNORECASE | re.DOTALL)


def findings_section(report: str) -> str:
    """The text of the report's "Findings:" section; the whole report when it has none (or it is empty)."""
    match = FINDINGS_SECTION.search(report)
    return match.group(1).strip() if match and match.group(1).strip() else report


def with_report_section(entries: Sequence[ManifestEntry], section: str) -> list[ManifestEntry]:
    """Entries whose report is the given section ("full": unchanged, "findings": findings_section)."""
    if section == "full":
        return list(entries)
    return [dataclasses.replace(entry, report=findings_section(entry.report)) for entry in entries]


def volume_digest(volume: str) -> str:
    """Stable id of a volume path (cache file names, validation split, augmentation seeds)."""
    return hashlib.sha256(volume.encode("utf-8")).hexdigest()


def split_train_validation(entries: Sequence[ManifestEntry], val_fraction: float
                           ) -> tuple[list[ManifestEntry], list[ManifestEntry]]:
    """Hold out ceil(val_fraction * N) volumes, the ones whose manifest name has the smallest hash.

    Hashing the name as written (not manifest positions, not the resolved path) keeps the split when
    lines are reordered or the data set moves.
    """
    held_out = set(sorted(range(len(entries)), key=lambda i: volume_digest(entries[i].name))
                   [:math.ceil(val_fraction * len(entries))])
    train = [entry for i, entry in enumerate(entries) if i not in held_out]
    validation = [entry for i, entry in enumerate(entries) if i in held_out]
    return train, validation
