"""Smoke-scale inputs from what ships with the package and the shared data: the bundled CT as dataset 980 and a
pretraining manifest pairing its volumes with captions curated from the shared CT-RATE reports.

The dataset is the demo's (example_dataset: three slabs of the one scan, six structures) plus a test set
(imagesTs/labelsTs) holding the full scan. The scan is also in training, so smoke numbers show that every step runs
and learns anatomy, not how a model generalises to other patients. CT-RATE reports come without volumes, so each
training volume is paired with one curated report, in order (smoke pairs, not real ones; a manifest lists a volume
once); region captions (Table VIII
row 4) pair each labelled structure's mask with a caption of that report naming it, or "<structure> is normal."
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Dict, List

from nnunetv2_openvocab.atomic_files import atomic_write, write_json_atomic
from nnunetv2_openvocab.example_dataset import build_example_dataset
from nnunetv2_openvocab.prompts.dataset_prompts import TrainingPrompts
from nnunetv2_openvocab.user_errors import UserError

TEST_CASE = "example_000"          # the full scan


def build_smoke_dataset(raw_root: Path, dataset_id: int, name: str) -> Path:
    folder = build_example_dataset(raw_root, dataset_id, name=name)
    for kind, suffix in (("images", "_0000.nii.gz"), ("labels", ".nii.gz")):
        (folder / f"{kind}Ts").mkdir(exist_ok=True)
        shutil.copyfile(folder / f"{kind}Tr" / f"{TEST_CASE}{suffix}", folder / f"{kind}Ts" / f"{TEST_CASE}{suffix}")
    return folder


def _curated_reports(curated_manifest: Path, count: int) -> List[dict]:
    lines = curated_manifest.read_text(encoding="utf-8").splitlines() if curated_manifest.is_file() else []
    records = [json.loads(line) for line in lines if line.strip()]
    if len(records) < count:
        raise UserError(f"{curated_manifest}: {len(records)} curated reports, the smoke manifest needs {count}. "
                        f"Fix: check --reports of the caption step (shared/data/ct_rate_reports/train.csv).")
    return records[:count]


def _region_caption(prompt: str, captions: List[str]) -> str:
    word = prompt.split()[-1].lower()
    return next((caption for caption in captions if word in caption.lower()), f"The {prompt} is normal.")


def write_smoke_manifests(dataset_folder: Path, curated_manifest: Path, output_folder: Path) -> Dict[str, Path]:
    """``manifest.jsonl`` (volume, report, captions) and ``manifest_regions.jsonl`` (plus regions) in
    ``output_folder``, absolute paths."""
    dataset_json = json.loads((dataset_folder / "dataset.json").read_text(encoding="utf-8"))
    labels = TrainingPrompts.from_dataset_json(dataset_json).labels
    images = sorted((dataset_folder / "imagesTr").glob("*_0000.nii.gz"))
    reports = _curated_reports(curated_manifest, len(images))
    plain, with_regions = [], []
    for image, report in zip(images, reports):
        mask = dataset_folder / "labelsTr" / image.name.replace("_0000.nii.gz", ".nii.gz")
        record = {"volume": str(image), "report": report["report"], "captions": report["captions"]}
        regions = [{"mask": str(mask), "label": dataset_json["labels"][label.name],
                    "caption": _region_caption(label.canonical_prompt, report["captions"])}
                   for label in labels]
        plain.append(record)
        with_regions.append({**record, "regions": regions})
    paths = {"plain": output_folder / "manifest.jsonl", "regions": output_folder / "manifest_regions.jsonl"}
    for kind, records in (("plain", plain), ("regions", with_regions)):
        with atomic_write(paths[kind]) as handle:
            handle.write("".join(json.dumps(record) + "\n" for record in records))
    write_json_atomic(output_folder / "pairing.json", {"rule": __doc__.split("\n\n")[1].replace("\n", " ")})
    return paths
