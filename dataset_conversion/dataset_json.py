"""Build the prompt-ready nnU-Net dataset.json (format: nnunetv2_openvocab.prompts.dataset_prompts).

Keys written: nnU-Net's ``channel_names`` ({"0": "CT"}), ``labels`` (+ ``regions_class_order`` when labels overlap),
``numTraining``, ``file_ending``; the plugin's ``text_prompts`` (taxonomy default prompt + synonyms) and, for
partially labelled sets, ``annotated_labels``; provenance ``source``, ``licence``, ``reference``; plus any extra keys
(the merge adds ``label_relations`` and ``source_datasets``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from nnunetv2_openvocab.atomic_files import write_json_atomic
from dataset_conversion.region_labels import nnunet_labels, order_supersets_first, regions_class_order
from nnunetv2_openvocab.prompts.taxonomy import Taxonomy, load_taxonomy
from nnunetv2_openvocab.prompts.dataset_prompts import ANNOTATED_LABELS_KEY, TEXT_PROMPTS_KEY

FILE_ENDING = ".nii.gz"


def nnunet_raw_folder() -> Path:
    """$nnUNet_raw, read through nnU-Net's own paths module."""
    from nnunetv2.paths import nnUNet_raw

    if not nnUNet_raw:
        raise ValueError("nnUNet_raw is not set; export nnUNet_raw=/path/to/nnUNet_raw or pass -o.")
    return Path(nnUNet_raw)


def dataset_folder(output_root: Path, dataset_id: int, name: str) -> Path:
    """``<root>/DatasetXXX_<name>``; refuses an id already used by a differently named dataset."""
    if not 0 < dataset_id < 1000:
        raise ValueError(f"Dataset id must be 1..999 (nnU-Net uses three digits), got {dataset_id}.")
    folder = Path(output_root) / f"Dataset{dataset_id:03d}_{name}"
    taken = [p.name for p in Path(output_root).glob(f"Dataset{dataset_id:03d}_*") if p != folder]
    if taken:
        raise FileExistsError(f"Dataset id {dataset_id} is already used by {taken} in {output_root}; pick another "
                              f"-d or remove that folder.")
    return folder


def build_dataset_json(name: str, labels: Mapping[str, Sequence[int]], num_training: int, provenance: Mapping[str, str],
                       description: str = "", annotated_labels: Optional[Mapping[str, List[str]]] = None,
                       extra: Optional[Mapping] = None, taxonomy: Optional[Taxonomy] = None,
                       text_prompts: Optional[Mapping[str, List[str]]] = None) -> dict:
    """dataset.json content; prompts come from the taxonomy unless ``text_prompts`` gives them per label."""
    taxonomy = taxonomy or load_taxonomy()
    ordered = order_supersets_first(labels)
    prompts = {label: list(text_prompts[label]) if text_prompts else taxonomy.prompts_for(label) for label in ordered}
    dataset_json: Dict[str, object] = {
        "name": name,
        "description": description,
        "channel_names": {"0": "CT"},
        "labels": nnunet_labels(ordered),
    }
    region_order = regions_class_order(ordered)
    if region_order is not None:
        dataset_json["regions_class_order"] = region_order
    dataset_json.update({
        "numTraining": num_training,
        "file_ending": FILE_ENDING,
        TEXT_PROMPTS_KEY: prompts,
    })
    if annotated_labels:
        dataset_json[ANNOTATED_LABELS_KEY] = {case: list(names) for case, names in sorted(annotated_labels.items())}
    dataset_json.update({k: provenance[k] for k in ("source", "licence", "reference") if k in provenance})
    dataset_json.update(extra or {})
    return dataset_json


def write_dataset_json(folder: Path, dataset_json: Mapping) -> Path:
    path = Path(folder) / "dataset.json"
    write_json_atomic(path, dataset_json)
    return path
