"""Merge converted nnU-Net datasets into one partially labelled training set (``nnUNetv2_openvocab_merge``).

Steps:
1. Labels are harmonised by their canonical names (:mod:`dataset_conversion.label_harmonisation`); every merged case
   lists its annotated labels in ``annotated_labels``, so a structure annotated only in another dataset is unknown
   (masked), never background. Tumours stay their own labels; ``label_relations`` records each lesion's organ.
2. Duplicate scans are found by a content hash of voxel values + geometry (``volume_checks.scan_fingerprint``).
   Rule (``DUPLICATE_RULE``): the scan is kept once, under the earliest dataset in the ``-d`` order; the annotated
   label sets are united; for a structure annotated in both copies the earlier dataset wins; a structure annotated
   only in a later copy is added where the taxonomy lets it overlap the earlier labels (KiTS 'kidney' +
   'kidney_right'), elsewhere the earlier labels win. Duplicate groups and conflict counts: ``merge_report.json``.
3. Per merged case: image hard-linked (or copied), label map rewritten with the merged values, a done-marker written
   last; re-running the command resumes. Only training cases (imagesTr/labelsTr) are merged.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np

from dataset_conversion.case_conversion import CHANNEL_SUFFIX, FILE_ENDING, remove_stale_temporaries
from dataset_conversion.converter import default_num_processes
from dataset_conversion.dataset_json import build_dataset_json, write_dataset_json
from nnunetv2_openvocab.atomic_files import link_or_copy_atomic, write_json_atomic
from dataset_conversion.label_harmonisation import (HarmonisedLabels, NameSet, annotated_sets, compatible_pairs,
                                                    harmonise, union_duplicate_labels)
from dataset_conversion.parallel import run_parallel
from dataset_conversion.problems import ERROR, WARNING, CaseError, Problem, write_problem_report
from dataset_conversion.region_labels import LabelValues, normalise
from dataset_conversion.taxonomy import Taxonomy, load_taxonomy
from dataset_conversion.volume_checks import array_like, label_array, read_volume, scan_fingerprint, write_volume_atomic
from nnunetv2_openvocab.prompts.dataset_prompts import ANNOTATED_LABELS_KEY, TEXT_PROMPTS_KEY

logger = logging.getLogger(__name__)

MERGE_VERSION = "1"
STATE_DIR = ".merge"
REPORT_NAME = "merge_report.json"
DUPLICATE_RULE = ("Duplicate scans (same voxel values and geometry) are kept once, under the earliest dataset in the "
                  "-d order; their annotated label sets are united; for a structure annotated in both copies the "
                  "earlier dataset's voxels win; a structure annotated only in a later copy is added where it can "
                  "overlap the earlier labels (part of them, or a lesion in them) and the earlier labels win "
                  "elsewhere (counted as conflict voxels).")


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


@dataclass(frozen=True)
class MergeJob:
    output_folder: Path
    harmonised: HarmonisedLabels
    compatible: FrozenSet[FrozenSet[str]]  # label pairs one voxel may carry (taxonomy part-of / lesion-in-organ)
    fingerprint: str


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


def _marker_path(folder: Path, identifier: str) -> Path:
    return folder / STATE_DIR / "done" / f"{identifier}.json"


def _outputs(folder: Path, identifier: str) -> Tuple[Path, Path]:
    return (folder / "imagesTr" / f"{identifier}{CHANNEL_SUFFIX}{FILE_ENDING}",
            folder / "labelsTr" / f"{identifier}{FILE_ENDING}")


def _united_labels(case: MergedCase, harmonised: HarmonisedLabels, compatible: FrozenSet[FrozenSet[str]]):
    """(merged label values, annotated names, table, conflicting voxels, kept label image), duplicates united."""
    kept = case.members[0]
    label_image = read_volume(kept.label, "Label")
    merged = harmonised.lookup_table(kept.source_index)[label_array(label_image, kept.label)]
    annotated: Set[str] = set(kept.annotated)
    conflicts = 0
    for other in case.members[1:]:
        other_values = harmonised.lookup_table(other.source_index)[
            label_array(read_volume(other.label, "Label"), other.label)]
        merged, annotated, harmonised, n = union_duplicate_labels(merged, annotated, other_values,
                                                                  set(other.annotated), harmonised, compatible)
        conflicts += n
    return merged, annotated, harmonised, conflicts, label_image


def extra_classes(case: MergedCase, harmonised: HarmonisedLabels, compatible: FrozenSet[FrozenSet[str]]
                  ) -> List[NameSet]:
    """Label name sets that uniting this duplicate group creates (read-only pre-pass before writing)."""
    try:
        grown = _united_labels(case, harmonised, compatible)[2]
    except CaseError:
        return []  # reported when the case is written
    return list(grown.atomic_classes[len(harmonised.atomic_classes):])


def merge_case(case: MergedCase, job: MergeJob) -> dict:
    """Write one merged case; returns its marker ``{identifier, annotated, members, problems}``."""
    marker_path = _marker_path(job.output_folder, case.identifier)
    image_dest, label_dest = _outputs(job.output_folder, case.identifier)
    if marker_path.is_file() and image_dest.is_file() and label_dest.is_file():
        marker = json.loads(marker_path.read_text(encoding="utf-8"))
        if marker.get("fingerprint") == job.fingerprint:
            return marker
    try:
        merged, annotated, table, conflicts, label_image = _united_labels(case, job.harmonised, job.compatible)
        if table is not job.harmonised:
            raise RuntimeError("label classes missing from the pre-pass; re-run the merge")
        link_or_copy_atomic(case.members[0].image, image_dest)
        write_volume_atomic(array_like(merged.astype(np.uint8 if merged.max() < 256 else np.uint16), label_image),
                            label_dest)
    except CaseError as err:
        problem = err.problem
    except Exception as err:  # one bad case must not end the merge; the report keeps the message
        problem = Problem("conversion_error", ERROR, f"Merging {case.identifier} failed: {type(err).__name__}: {err}")
    else:
        problems = []
        if len(case.members) > 1:
            problems.append(Problem("duplicate_scan", WARNING, f"{case.identifier} is the same scan as "
                                    f"{[m.source_case for m in case.members[1:]]}; labels united by the duplicate rule "
                                    f"({conflicts} conflicting voxels kept from the earlier dataset)."))
        marker = {"identifier": case.identifier, "fingerprint": job.fingerprint, "annotated": sorted(annotated),
                  "members": [f"{m.source_index}:{m.source_case}" for m in case.members],
                  "conflict_voxels": conflicts, "problems": [p.to_json() for p in problems]}
        write_json_atomic(marker_path, marker)
        return marker
    for path in (image_dest, label_dest, marker_path):  # a failed case leaves nothing nnU-Net could pick up
        if path.exists():
            path.unlink()
    return {"identifier": case.identifier, "failed": True, "problems": [problem.to_json()]}


def _merge_crashed(case: MergedCase, err: BaseException) -> dict:
    problem = Problem("conversion_error", ERROR, f"Worker merging {case.identifier} died: {type(err).__name__}: "
                                                 f"{err}. Re-run to retry.")
    return {"identifier": case.identifier, "failed": True, "problems": [problem.to_json()]}


def merged_text_prompts(names: Sequence[str], sources: Sequence[SourceDataset],
                        taxonomy: Taxonomy) -> Dict[str, List[str]]:
    """Taxonomy prompts; for a name outside the taxonomy, the first source's own prompts (or the name itself)."""
    prompts = {}
    for name in names:
        if name in taxonomy:
            prompts[name] = taxonomy.prompts_for(name)
            continue
        own = [s.dataset_json.get(TEXT_PROMPTS_KEY, {}).get(name) for s in sources]
        prompts[name] = next((p for p in own if p), [name.replace("_", " ")])
    return prompts


def label_relations(names: Sequence[str], taxonomy: Taxonomy) -> Dict[str, dict]:
    """{label: {"organ": lesion organ, "part_of": [merged labels it belongs to]}} from the taxonomy."""
    present = set(names)
    relations = {}
    for name in names:
        if name not in taxonomy:
            continue
        structure = taxonomy.structure(name)
        relation = {}
        if structure.is_lesion:
            relation["organ"] = structure.organ
        parents = [p for p in structure.part_of if p in present]
        if parents:
            relation["part_of"] = parents
        if relation:
            relations[name] = relation
    return relations


def remove_unplanned_cases(folder: Path, identifiers: Set[str]) -> None:
    """Drop merged cases of an earlier run with other sources, so numTraining matches imagesTr."""
    for sub, suffix in (("imagesTr", f"{CHANNEL_SUFFIX}{FILE_ENDING}"), ("labelsTr", FILE_ENDING)):
        for path in (folder / sub).glob(f"D[0-9][0-9][0-9]_*{suffix}"):
            if path.name[:-len(suffix)] not in identifiers and not path.name.startswith("."):
                logger.warning("Removing %s: not part of this merge.", path)
                path.unlink()


def _merge_fingerprint(sources: Sequence[SourceDataset]) -> str:
    digest = hashlib.sha256(MERGE_VERSION.encode())
    for source in sources:
        digest.update(str(source.folder.resolve()).encode())
        digest.update(json.dumps(source.dataset_json, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def merge_datasets(source_folders: Sequence[Tuple[int, Path]], output_folder: Path,
                   num_processes: Optional[int] = None, taxonomy: Optional[Taxonomy] = None) -> Path:
    """Merge ``[(dataset id, folder), ...]`` (order = priority) into ``output_folder``; return its dataset.json."""
    taxonomy = taxonomy or load_taxonomy()
    num_processes = num_processes or default_num_processes()
    sources = [load_source(folder, dataset_id) for dataset_id, folder in source_folders]
    output_folder = Path(output_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    harmonised = harmonise([s.labels for s in sources])
    images = [s.image(case) for s in sources for case in s.case_ids]
    fingerprints = scan_fingerprints(images, output_folder / STATE_DIR / "scan_hashes.json", num_processes)
    cases = plan_merged_cases(sources, fingerprints)
    remove_stale_temporaries(output_folder, STATE_DIR)
    remove_unplanned_cases(output_folder, {c.identifier for c in cases})
    duplicates = [case for case in cases if len(case.members) > 1]
    compatible = compatible_pairs(list(harmonised.labels), taxonomy.can_overlap)
    grown = run_parallel(partial(extra_classes, harmonised=harmonised, compatible=compatible), duplicates,
                         num_processes, "Uniting duplicate labels", lambda case, err: [])
    harmonised = harmonised.with_classes(sorted({n for names in grown for n in names}, key=sorted))
    job = MergeJob(output_folder, harmonised, compatible, _merge_fingerprint(sources))
    markers = run_parallel(partial(merge_case, job=job), cases, num_processes, "Merging cases", _merge_crashed)
    done = sorted((m for m in markers if not m.get("failed")), key=lambda m: m["identifier"])
    duplicate_groups = [{"kept": m["identifier"], "members": m["members"], "conflict_voxels": m["conflict_voxels"]}
                        for m in done if len(m["members"]) > 1]
    write_problem_report(output_folder / REPORT_NAME, "Merging datasets",
                         {m["identifier"]: [Problem.from_json(p) for p in m["problems"]] for m in markers},
                         len(cases), extra={"duplicate_rule": DUPLICATE_RULE, "duplicates": duplicate_groups})
    if not done:
        raise ValueError(f"No case could be merged; see {output_folder / REPORT_NAME}.")
    names = list(harmonised.labels)
    partial_cases = {m["identifier"]: m["annotated"] for m in done if set(m["annotated"]) != set(names)}
    dataset_json = build_dataset_json(
        name=output_folder.name, labels=harmonised.labels, num_training=len(done),
        provenance={"source": "nnUNetv2_openvocab_merge of the datasets in source_datasets",
                    "licence": "Mixed: each case keeps the licence of its source dataset (see source_datasets).",
                    "reference": "See source_datasets."},
        description=f"Merged from {len(sources)} datasets. {DUPLICATE_RULE}", annotated_labels=partial_cases,
        text_prompts=merged_text_prompts(names, sources, taxonomy),
        extra={"label_relations": label_relations(names, taxonomy),
               "source_datasets": [{"dataset_id": s.dataset_id, "folder": s.folder.name, "num_cases": len(s.case_ids),
                                    **{k: s.dataset_json.get(k) for k in ("source", "licence", "reference")}}
                                   for s in sources]})
    path = write_dataset_json(output_folder, dataset_json)
    logger.info("Merged %d cases (%d partially labelled, %d duplicate groups) into %s.", len(done),
                len(partial_cases), len(duplicate_groups), output_folder)
    return path
