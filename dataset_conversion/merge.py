"""Merge converted nnU-Net datasets into one partially labelled training set (``nnUNetv2_openvocab_merge``).

Steps (modules merge_sources, merge_cases and this one):
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
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from nnunetv2.configuration import default_num_processes

from dataset_conversion.case_conversion import CHANNEL_SUFFIX, FILE_ENDING, remove_stale_temporaries
from dataset_conversion.dataset_json import build_dataset_json, dataset_folder, nnunet_raw_folder, write_dataset_json
from dataset_conversion.label_harmonisation import compatible_pairs, harmonise
from dataset_conversion.merge_cases import STATE_DIR, MergeJob, extra_classes, merge_case, merge_crashed
from dataset_conversion.merge_sources import (SourceDataset, find_dataset_folder, load_source, plan_merged_cases,
                                             scan_fingerprints)
from dataset_conversion.parallel import run_parallel
from dataset_conversion.problems import Problem, write_problem_report
from nnunetv2_openvocab.prompts.dataset_prompts import TrainingPrompts
from nnunetv2_openvocab.prompts.taxonomy import Taxonomy, load_taxonomy

logger = logging.getLogger(__name__)

MERGE_VERSION = "1"
REPORT_NAME = "merge_report.json"
DUPLICATE_RULE = ("Duplicate scans (same voxel values and geometry) are kept once, under the earliest dataset in the "
                  "-d order; their annotated label sets are united; for a structure annotated in both copies the "
                  "earlier dataset's voxels win; a structure annotated only in a later copy is added where it can "
                  "overlap the earlier labels (part of them, or a lesion in them) and the earlier labels win "
                  "elsewhere (counted as conflict voxels).")


def merged_text_prompts(names: Sequence[str], sources: Sequence[SourceDataset],
                        taxonomy: Taxonomy) -> Dict[str, List[str]]:
    """Taxonomy prompts; for a name outside the taxonomy, the first source's own prompts (or the name itself)."""
    prompts = {}
    for name in names:
        if name in taxonomy:
            prompts[name] = taxonomy.prompts_for(name)
            continue
        own = [TrainingPrompts.from_dataset_json(s.dataset_json, skip_unprompted=True).prompts_by_label.get(name)
               for s in sources]
        prompts[name] = list(next((p for p in own if p), [name.replace("_", " ")]))
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
    num_processes = num_processes or default_num_processes
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
    markers = run_parallel(partial(merge_case, job=job), cases, num_processes, "Merging cases", merge_crashed)
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


def merge_by_ids(dataset_ids: Sequence[int], new_id: int, name: str = "Merged", num_processes: Optional[int] = None,
                 raw_root: Optional[Path] = None) -> Path:
    """Plain-function form of the command (for notebooks); returns the merged dataset.json path."""
    if len(set(dataset_ids)) != len(dataset_ids) or new_id in dataset_ids:
        raise ValueError(f"Source ids {list(dataset_ids)} must be distinct and differ from the new id {new_id}.")
    raw_root = Path(raw_root) if raw_root else nnunet_raw_folder()
    sources = [(i, find_dataset_folder(raw_root, i)) for i in dataset_ids]
    return merge_datasets(sources, dataset_folder(raw_root, new_id, name), num_processes)
