"""Run a table's steps in order, each skipped when its result exists, with progress and an ETA per step.

A step is a console command (run as a subprocess in the run folder, with nnU-Net's folders under it, exactly what a
lab types) or a library call (dataset and manifest preparation). Its result counts as existing once its done marker
``.steps/<key>.json`` is written, atomically and only after the step succeeded; the key is a hash of the step's
command, so the same step shared by two tables or row selections runs once, and a step interrupted before its
marker is redone (nnUNetv2_train continues from its latest checkpoint with ``--c``, pretraining with ``--resume``)
while finished ones are not.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from nnunetv2_openvocab.atomic_files import write_json_atomic
from nnunetv2_openvocab.demo import ProgressEcho, command_path, run_logged
from nnunetv2_openvocab.user_errors import UserError

STEP_FOLDER = ".steps"
# rough seconds of a step of each kind at smoke scale on 2 quiet cores; the ETA uses them until the run has timed a
# step of the same kind itself (a busy machine takes several times longer: benchmarks/RESULTS.md)
EXPECTED_SECONDS = {"nnUNetv2_openvocab_plan_and_preprocess": 40, "nnUNetv2_train": 150,
                    "nnUNetv2_openvocab_pretrain": 40, "nnUNetv2_openvocab_predict": 30,
                    "nnUNetv2_openvocab_evaluate": 10, "nnUNetv2_openvocab_eval_unseen": 40,
                    "nnUNetv2_openvocab_curate_captions": 10}


@dataclass(frozen=True)
class Step:
    label: str
    command: Sequence[str] = ()                # a console command, relative paths from the run folder
    call: Optional[Callable[[], None]] = None  # or a library call
    epochs: Optional[int] = None               # nnUNetv2_train: epochs to report progress against

    @property
    def key(self) -> str:
        what = list(self.command) if self.command else [self.label]
        return hashlib.sha1(json.dumps(what).encode("utf-8")).hexdigest()[:16]

    @property
    def kind(self) -> str:
        return self.command[0] if self.command else "library"


@dataclass
class StepRunner:
    folder: Path
    env: Dict[str, str]
    timings: Dict[str, List[float]] = field(default_factory=dict)

    def marker(self, step: Step) -> Path:
        return self.folder / STEP_FOLDER / f"{step.key}.json"

    def eta_seconds(self, steps: Sequence[Step]) -> float:
        def expected(step: Step) -> float:
            measured = self.timings.get(step.kind)
            return sum(measured) / len(measured) if measured else EXPECTED_SECONDS.get(step.kind, 5)
        return sum(expected(step) for step in steps if not self.marker(step).is_file())

    def run(self, steps: Sequence[Step]) -> None:
        for index, step in enumerate(steps, start=1):
            prefix = f"[{index}/{len(steps)}] {step.label}"
            if self.marker(step).is_file():
                print(f"{prefix}: done earlier, skipped", flush=True)
                continue
            print(f"{prefix} (ETA of the remaining steps: {math.ceil(self.eta_seconds(steps[index - 1:]) / 60)} "
                  f"min)", flush=True)
            start = time.monotonic()
            self._execute(step)
            seconds = time.monotonic() - start
            self.timings.setdefault(step.kind, []).append(seconds)
            write_json_atomic(self.marker(step), {"label": step.label, "command": list(step.command),
                                                  "seconds": round(seconds, 1)})
            print(f"    done in {seconds:.0f} s", flush=True)

    def _execute(self, step: Step) -> None:
        if step.call is not None:
            step.call()
            return
        arguments = [command_path(step.command[0]), *step.command[1:]]
        if step.command[0] == "nnUNetv2_train":
            arguments.append("--c")  # a redone (interrupted) training continues from its latest checkpoint
        if tuple(step.command[:2]) == ("nnUNetv2_openvocab_pretrain", "train") and \
                (self.folder / step.command[step.command.index("--out") + 1] / "checkpoint.pt").is_file():
            arguments.append("--resume")  # likewise for an interrupted pretraining
        log = self.folder / "logs" / f"{step.key}_{Path(step.command[0]).name}.log"
        run_logged(arguments, self.env, log, progress=ProgressEcho(step.epochs), cwd=self.folder)


def check_run_folder(folder: Path) -> Path:
    folder = Path(folder).resolve()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder} is a file; give a folder (new or from an earlier run to resume).")
    return folder
