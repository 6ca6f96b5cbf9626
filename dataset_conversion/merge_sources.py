"""Merging, steps 1 and 2: the source datasets, and their cases grouped by scan content (duplicates found once).

Duplicate scans are found by a content hash of voxel values + geometry (``volume_checks.scan_fingerprint``),
cached per file so that a re-run hashes only new or changed scans.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

from dataset_conversion.case_conversion import CHANNEL_SUFFIX, FILE_ENDING
from dataset_conversion.label_harmonisation import annotated_sets
from dataset_conversion.parallel import run_parallel
from dataset_conversion.region_labels import LabelValues, normalise
from dataset_conversion.volume_checks import read_volume, scan_fingerprint
from nnunetv2_openvocab.atomic_files import write_json_atomic
from nnunetv2_openvocab.prompts.dataset_prompts import ANNOTATED_LABELS_KEY


@dataclass(frozen=True)
class SourceDataset:
    dataset_id: int
    folder: Path
    dataset_json: dict
    labels: LabelValues
    case_ids: Tuple[str, ...]

    def image(self, case: str) -> Path:
        return self.folder / "imagesTr" / f"{case}{CHANNEL_SUFFIX}{FILE_ENDING}"

    def label(self, case: str) -> Path:
        return self.folder / "labelsTr" / f"{case}{FILE_ENDING}"

    def merged_identifier(self, case: str) -> str:
        return f"D{self.dataset_id:03d}_{case}"


@dataclass(frozen=True)
class MemberCase:
    """One source case of a merged case; the first member of a merged case is the one kept."""
    source_index: int
    source_case: str
    image: Path
    label: Path
    annotated: Tuple[str, ...]


@dataclass(frozen=True)
class MergedCase:
    identifier: str
    members: Tuple[MemberCase, ...]


def find_dataset_folder(raw_root: Path, dataset_id: int) -> Path:
    matches = sorted(Path(raw_root).glob(f"Dataset{dataset_id:03d}_*"))
    if len(matches) != 1:
        raise FileNotFoundError(f"Expected one folder Dataset{dataset_id:03d}_* in {raw_root}, found "
                                f"{[m.name for m in matches]}; check -d and $nnUNet_raw.")
    return matches[0]


def load_source(folder: Path, dataset_id: int) -> SourceDataset:
    path = Path(folder) / "dataset.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; convert the dataset first (nnUNetv2_openvocab_convert).")
    dataset_json = json.loads(path.read_text(encoding="utf-8"))
    channels = list(dataset_json.get("channel_names", {}).values())
    if channels != ["CT"] or dataset_json.get("file_ending") != FILE_ENDING:
        raise ValueError(f"{path}: only single-channel CT datasets with file_ending {FILE_ENDING} can be merged "
                         f"(found channel_names {channels}, file_ending {dataset_json.get('file_ending')}).")
    case_ids = tuple(sorted(p.name[:-len(FILE_ENDING)] for p in (Path(folder) / "labelsTr").glob(f"*{FILE_ENDING}")
                            if not p.name.startswith(".")))
    return SourceDataset(dataset_id, Path(folder), dataset_json, normalise(dataset_json["labels"]), case_ids)


def _fingerprint_worker(path: Path) -> Tuple[str, str]:
    return str(path), scan_fingerprint(read_volume(path, "Image"))


def _file_key(path: Path) -> str:
    stat = path.stat()
    return f"{path}|{stat.st_size}|{stat.st_mtime_ns}"


def scan_fingerprints(images: Sequence[Path], cache_path: Path, num_processes: int) -> Dict[str, str]:
    """{image path: content hash}; hashes of unchanged files are reused from ``cache_path`` (resumable)."""
    cache = json.loads(cache_path.read_text(encoding="utf-8")) if cache_path.is_file() else {}
    present = [p for p in images if p.is_file()]
    todo = [p for p in present if _file_key(p) not in cache]
    results = run_parallel(_fingerprint_worker, todo, num_processes, "Hashing scans",
                           lambda path, err: (str(path), f"unreadable:{path}"))  # unique: never a duplicate
    cache.update({_file_key(Path(p)): digest for p, digest in results})
    write_json_atomic(cache_path, cache)
    hashes = {str(p): f"missing:{p}" for p in images}  # missing images are reported when their case is merged
    hashes.update({str(p): cache[_file_key(p)] for p in present})
    return hashes


def plan_merged_cases(sources: Sequence[SourceDataset], fingerprints: Mapping[str, str]) -> List[MergedCase]:
    """Group source cases by scan hash; the earliest source's case is kept and names the merged case."""
    groups: Dict[str, List[MemberCase]] = {}
    first_identifier: Dict[str, str] = {}
    for index, source in enumerate(sources):
        annotated = annotated_sets(source.case_ids, source.labels, source.dataset_json.get(ANNOTATED_LABELS_KEY, {}))
        for case in source.case_ids:
            digest = fingerprints[str(source.image(case))]
            member = MemberCase(index, case, source.image(case), source.label(case), tuple(sorted(annotated[case])))
            groups.setdefault(digest, []).append(member)
            first_identifier.setdefault(digest, source.merged_identifier(case))
    return [MergedCase(first_identifier[digest], tuple(members)) for digest, members in groups.items()]
