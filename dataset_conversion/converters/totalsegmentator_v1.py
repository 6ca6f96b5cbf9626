"""TotalSegmentator v1 (Wasserthal et al.; CC BY 4.0) with the OpenVocabCT/STU-Net protocol: 104 classes, five folds.

Native layout (v1 Zenodo release, 1204 subjects)::

    <native>/s0000/ct.nii.gz
    <native>/s0000/segmentations/<class>.nii.gz    104 binary masks with v1's class names (heart_myocardium,
                                                   heart_atrium_left, ..., pulmonary_artery, face)

The masks are painted with v1's class ids (data/label_tables/totalsegmentator_v1.json, from TotalSegmentator's
class_map_total_v1.json), the label layout of the released STU-Net checkpoints (105 outputs with background).

Split (paper, section IV): the subjects form five folds; fold 1 is the test set (imagesTs/labelsTs), folds 2 to 5
are training. Without ``--split-file`` the folds are nnU-Net's own five-fold split of the sorted subject ids
(KFold, shuffled with seed 12345; fold k = its k-th validation part). ``--split-file`` takes an official split:
nnU-Net's ``splits_final.json`` (a list of five ``{"train": [...], "val": [...]}``; fold k = entry k-1's ``val``)
or the ``folds.json`` this converter writes. Ids may be subject ids (``s0000``) or case ids (``totalseg_s0000``).
``folds.json`` in the output folder records ``{"test_fold": 1, "folds": {subject: fold}}``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

from nnunetv2.utilities.crossval_split import generate_crossval_split

from dataset_conversion.case_conversion import TEST, TRAIN
from dataset_conversion.converter import convert_dataset
from dataset_conversion.converters.totalsegmentator import require_native_folder, subject_cases, subject_folders
from dataset_conversion.label_tables import load_label_table
from nnunetv2_openvocab.atomic_files import write_json_atomic

TABLE_KEY = "totalsegmentator_v1"
NUM_FOLDS = 5
TEST_FOLD = 1
FOLDS_FILE = "folds.json"
NNUNET_SPLIT_SEED = 12345


def default_folds(subjects: List[str]) -> Dict[str, int]:
    """{subject: fold 1..5} from nnU-Net's five-fold split of the sorted subject ids."""
    splits = generate_crossval_split(sorted(subjects), seed=NNUNET_SPLIT_SEED, n_splits=NUM_FOLDS)
    return {subject: fold for fold, split in enumerate(splits, start=1) for subject in split["val"]}


def _subject_id(name: str, prefix: str) -> str:
    return name[len(prefix) + 1:] if name.startswith(prefix + "_") else name


def read_split_file(path: Path, prefix: str) -> Dict[str, int]:
    """{subject: fold} from an nnU-Net splits_final.json or a folds.json; one-line errors naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"--split-file {path}: cannot read it as JSON ({error}); give nnU-Net's splits_final.json "
                         f"or a folds.json written by this converter.") from error
    if isinstance(data, list) and len(data) == NUM_FOLDS and all(isinstance(s, dict) and "val" in s for s in data):
        folds = {_subject_id(name, prefix): fold for fold, split in enumerate(data, start=1) for name in split["val"]}
    elif isinstance(data, dict) and isinstance(data.get("folds"), dict):
        folds = {_subject_id(name, prefix): fold for name, fold in data["folds"].items()}
    else:
        raise ValueError(f"--split-file {path}: expected a list of {NUM_FOLDS} {{'train', 'val'}} entries "
                         f"(splits_final.json) or {{'folds': {{subject: fold}}}} (folds.json).")
    bad = sorted({fold for fold in folds.values() if fold not in range(1, NUM_FOLDS + 1)}, key=str)
    if bad:
        raise ValueError(f"--split-file {path}: folds must be 1..{NUM_FOLDS}, found {bad}.")
    return folds


def assign_folds(native_folder: Path, split_file: Optional[Path], prefix: str) -> Dict[str, int]:
    subjects = subject_folders(native_folder)
    if split_file is None:
        return default_folds(subjects)
    folds = read_split_file(split_file, prefix)
    missing = sorted(set(subjects) - set(folds))
    if missing:
        raise ValueError(f"--split-file {split_file}: {len(missing)} subject folder(s) of {native_folder} are in no "
                         f"fold (first: {missing[:5]}); use the split file of this release.")
    return {subject: folds[subject] for subject in subjects}


def convert(native_folder: Path, output_folder: Path, num_processes: Optional[int] = None,
            split_file: Optional[Path] = None) -> Path:
    native_folder, output_folder = Path(native_folder), Path(output_folder)
    require_native_folder(native_folder)
    table = load_label_table(TABLE_KEY)
    folds = assign_folds(native_folder, split_file, table.case_prefix)
    output_folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output_folder / FOLDS_FILE, {
        "test_fold": TEST_FOLD, "source": str(split_file) if split_file else f"nnU-Net KFold seed {NNUNET_SPLIT_SEED}",
        "folds": folds})
    splits = {subject: TEST if fold == TEST_FOLD else TRAIN for subject, fold in folds.items()}
    return convert_dataset(table, subject_cases(native_folder, table, splits), output_folder, num_processes,
                           description=f"{table.dataset}, fold {TEST_FOLD} of {NUM_FOLDS} as test set (see "
                                       f"{FOLDS_FILE}), converted by nnUNetv2_openvocab_convert.")
