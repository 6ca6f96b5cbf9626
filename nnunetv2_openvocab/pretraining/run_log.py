"""The run's logs: training_log.jsonl (one line per step), validation.jsonl (one per validation) and
loss_curve.png (losses and validation recall@k against steps), all rewritten atomically: the logs
at every epoch end and checkpoint, the curve at every checkpoint.

On resume the logs are cut back to the checkpoint's step, so replayed steps are not listed twice.
"""
from __future__ import annotations

import json
from pathlib import Path

from nnunetv2_openvocab.atomic_files import atomic_path, write_text_atomic

TRAINING_LOG = "training_log.jsonl"
VALIDATION_LOG = "validation.jsonl"
LOSS_CURVE = "loss_curve.png"


class RunLog:
    def __init__(self, run_folder: str | Path):
        self.folder = Path(run_folder)
        self.records: dict[str, list[dict]] = {name: self._read(name) for name in (TRAINING_LOG, VALIDATION_LOG)}

    def _read(self, name: str) -> list[dict]:
        path = self.folder / name
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def _write(self, name: str) -> None:
        write_text_atomic(self.folder / name, "".join(json.dumps(record) + "\n" for record in self.records[name]))

    def truncate(self, step: int) -> None:
        """Forget records after `step` (they belong to steps that the resumed run repeats)."""
        for name in self.records:
            self.records[name] = [record for record in self.records[name] if record["step"] <= step]
            self._write(name)

    def add_training(self, record: dict) -> None:
        self.records[TRAINING_LOG].append(record)

    def add_validation(self, record: dict) -> None:
        self.records[VALIDATION_LOG].append(record)

    def flush(self, plot: bool) -> None:
        """Write both logs; redraw the curve if `plot` (rendering costs more than an epoch of a small run)."""
        for name in self.records:
            self._write(name)
        if plot:
            self.plot()

    def plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        training, validation = self.records[TRAINING_LOG], self.records[VALIDATION_LOG]
        figure, (loss_axis, recall_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
        loss_names = [name for name in training[0] if name.endswith("loss")] if training else []
        for name in loss_names:
            loss_axis.plot([r["step"] for r in training], [r[name] for r in training], label=name, linewidth=1)
        loss_axis.set(xlabel="step", ylabel="loss", title="training loss")
        recall_names = [name for name in validation[0] if "_R@" in name] if validation else []
        for name in recall_names:
            recall_axis.plot([r["step"] for r in validation], [r[name] for r in validation], marker="o", label=name)
        recall_axis.set(xlabel="step", ylabel="recall", ylim=(0, 1), title="held-out retrieval")
        for axis in (loss_axis, recall_axis):
            if axis.lines:
                axis.legend(fontsize=8)
        figure.tight_layout()
        with atomic_path(self.folder / LOSS_CURVE) as tmp:
            figure.savefig(tmp, dpi=100)
        plt.close(figure)
