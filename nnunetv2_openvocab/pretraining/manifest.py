"""Read the caption manifest and split it into training and held-out validation volumes.

``manifest.jsonl`` (written by caption curation and the CT-RATE converter) holds one JSON object per
line: ``{"volume": path, "report": text, "captions": [text, ...]}``. Relative volume paths are
relative to the manifest's folder; captions may be empty.

Optional ``"regions": [{"mask": path, "label": int, "caption": text}, ...]`` pair a structure with a caption
for fine-grained alignment (paper Table VIII row 4): the structure is the voxels equal to ``label`` in the
label map ``mask`` (same geometry as the volume; relative to the manifest's folder).
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
class Region:
    mask: str  # absolute path of a label map in the volume's geometry
    label: int  # the structure's value in that map
    caption: str


@dataclass(frozen=True)
class ManifestEntry:
    volume: str  # absolute path
    report: str
    captions: tuple[str, ...]
    name: str  # the volume as written in the manifest; keys the validation split
    regions: tuple[Region, ...] = ()


def _field(record: dict, name: str, kind: type, where: str):
    value = record.get(name)
    if not isinstance(value, kind):
        raise ValueError(f"{where}: field {name!r} must be a {kind.__name__}, found {value!r}. Each line needs "
                         f'{{"volume": path, "report": text, "captions": [text, ...]}}.')
    return value


def _regions(record: dict, folder: Path, where: str) -> tuple[Region, ...]:
    regions = record.get("regions", [])
    expected = '"regions": [{"mask": path, "label": int, "caption": text}, ...]'
    if not isinstance(regions, list):
        raise ValueError(f"{where}: field 'regions' must be a list, found {regions!r}; expected {expected}.")
    parsed = []
    for index, region in enumerate(regions):
        if not (isinstance(region, dict) and isinstance(region.get("mask"), str)
                and type(region.get("label")) is int and isinstance(region.get("caption"), str)
                and region["caption"].strip()):
            raise ValueError(f"{where}: regions[{index}] is {region!r}; expected {expected} with a non-empty caption.")
        mask = os.path.abspath(os.path.join(folder, region["mask"]))
        if not os.path.isfile(mask):
            raise FileNotFoundError(f"{where}: regions[{index}].mask {mask} does not exist; fix the path.")
        parsed.append(Region(mask, region["label"], region["caption"]))
    return tuple(parsed)


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
        entries.append(ManifestEntry(volume, _field(record, "report", str, where), tuple(captions), name,
                                     _regions(record, path.parent, where)))
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
