"""Prediction jobs: a bounded queue, one worker thread sharing the loaded model, and each job's own folder.

Folder of a job (``<work folder>/<job id>/``)::

    job.json     the record below, rewritten atomically at every state change
    input/       the uploaded case under server-chosen names (uploads.py)
    partial/     predict_from_files' output folder while the job runs
    out/         the same folder, renamed once every output is written: only ``out/`` is ever served

States: queued -> running -> done | failed. A server that stops mid-job leaves ``queued``/``running`` records;
the next server on the same work folder marks them failed (``restore_jobs``) and deletes their partial outputs,
so a client sees a failed job, never a half-written one. Finished jobs are deleted ``retention_s`` after they
finish. Jobs run one at a time: the sliding window already uses every core, and one predictor holds the model.
"""
from __future__ import annotations

import json
import logging
import queue
import shutil
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from nnunetv2_openvocab.atomic_files import write_json_atomic
from nnunetv2_openvocab.inference.outputs.case_outputs import NIFTI, OutputOptions, expected_files
from nnunetv2_openvocab.inference.file_prediction import PredictionRun
from nnunetv2_openvocab.inference.predictor import OpenVocabPredictor
from nnunetv2_openvocab.inference.prompt_jobs import PredictionJob
from nnunetv2_openvocab.prompts.prompt_text import prompt_file_name
from nnunetv2_openvocab.user_errors import USER_ERRORS

logger = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
RECORD, INPUT, PARTIAL, OUT = "job.json", "input", "partial", "out"
RESTARTED = "the server stopped before this job finished; its partial outputs were deleted. Submit it again."


class QueueFullError(RuntimeError):
    """Every queue slot is taken (HTTP 429)."""


@dataclass
class JobRecord:
    job_id: str
    state: str
    prompts: List[str]
    options: dict
    case_id: str
    output_ending: str
    input_path: str  # relative to the job folder
    submitted: float
    finished: Optional[float] = None
    error: Optional[str] = None
    outputs: List[str] = field(default_factory=list)  # relative to out/, the only names served
    results: List[dict] = field(default_factory=list)  # per prompt: route, labels, presence

    @property
    def output_options(self) -> OutputOptions:
        return OutputOptions(**self.options)


def new_job_id() -> str:
    return uuid.uuid4().hex


def prompt_results(run: PredictionRun, record: JobRecord) -> List[dict]:
    """Per prompt: how it was grounded, whether its structure was found (the run's prompt report) and the name of
    its mask output (None for a DICOM-SEG job)."""
    presence = run.report.presence.get(record.case_id, {})
    results = []
    for assessment in run.report.prompts:
        grounding, found = assessment.grounding, presence.get(assessment.prompt)
        results.append({"prompt": assessment.prompt, "status": assessment.status,
                        "route": grounding.route if grounding else None,
                        "labels": list(grounding.labels) if grounding else [],
                        "presence": found.to_dict() if found else None,
                        "mask": (prompt_file_name(record.case_id, assessment.prompt, record.output_ending)
                                 if record.output_options.output_type == NIFTI else None)})
    return results


class JobQueue:
    """Holds every job's record; ``submit`` enqueues, the worker thread predicts, the cleaner deletes old jobs."""

    def __init__(self, predictor: OpenVocabPredictor, work_folder: Path, max_queued: int, retention_s: float,
                 predictor_lock: threading.Lock):
        self.predictor, self.work_folder, self.retention_s = predictor, work_folder, retention_s
        self.predictor_lock = predictor_lock
        self.work_folder.mkdir(parents=True, exist_ok=True)
        self.records: Dict[str, JobRecord] = restore_jobs(work_folder)
        self._pending: "queue.Queue[str]" = queue.Queue(max_queued)
        self._order: List[str] = []  # queued job ids, for the queue position
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, name="openvocab-jobs", daemon=True),
                         threading.Thread(target=self._clean, name="openvocab-cleaner", daemon=True)]
        for thread in self._threads:
            thread.start()

    def folder(self, job_id: str) -> Path:
        return self.work_folder / job_id

    def reserve(self) -> str:
        """A new job id and its empty folder; raises QueueFullError before any upload is stored."""
        if self._pending.full():
            raise self._full()
        job_id = new_job_id()
        self.folder(job_id).mkdir()
        return job_id

    def submit(self, job_id: str, job: PredictionJob, options: OutputOptions, ending: str) -> JobRecord:
        record = JobRecord(job_id, QUEUED, list(job.prompts), asdict(options), job.case.case_id, ending,
                           str(job.case.sources[0].relative_to(self.folder(job_id))), time.time())
        self._save(record)
        self.records[job_id] = record
        try:
            self._order.append(job_id)
            self._pending.put_nowait(job_id)
        except queue.Full:
            self._order.remove(job_id)
            self.delete(job_id)
            raise self._full() from None
        return record

    def _full(self) -> QueueFullError:
        return QueueFullError(f"the job queue is full ({self._pending.maxsize} jobs); retry later.")

    def discard(self, job_id: str) -> None:
        """Remove a reserved folder whose upload was refused."""
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def delete(self, job_id: str) -> None:
        self.records.pop(job_id, None)
        self.discard(job_id)

    def status(self, record: JobRecord) -> dict:
        """The record as the API shows it, with queue position and progress (outputs written / expected)."""
        status = {k: v for k, v in asdict(record).items() if k not in ("input_path", "options", "output_ending")}
        status["output_options"] = record.options
        try:
            status["queue_position"] = self._order.index(record.job_id)
        except ValueError:  # not queued (any more: the worker may have just taken it)
            status["queue_position"] = None
        if record.state == RUNNING:
            expected = expected_files(self.folder(record.job_id) / PARTIAL, record.case_id, record.prompts,
                                      record.output_ending, record.output_options)
            status["progress"] = sum(p.is_file() for p in expected) / len(expected)
        else:
            status["progress"] = 1.0 if record.state == DONE else 0.0
        return status

    def output_file(self, record: JobRecord, name: str) -> Optional[Path]:
        """The file of a listed output name, else None: a request's name is looked up, never joined to a path."""
        listed = {output: output for output in record.outputs}
        return self.folder(record.job_id) / OUT / listed[name] if name in listed else None

    def close(self) -> None:
        self._stop.set()

    # ---- threads ------------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job_id = self._pending.get(timeout=0.5)
            except queue.Empty:
                continue
            self._order.remove(job_id)
            record = self.records.get(job_id)
            if record is not None:
                self._run(record)

    def _run(self, record: JobRecord) -> None:
        folder = self.folder(record.job_id)
        record.state = RUNNING
        self._save(record)
        try:
            with self.predictor_lock:
                run = self.predictor.predict_from_files(folder / record.input_path, folder / PARTIAL, record.prompts,
                                                        options=record.output_options)
            record.results = prompt_results(run, record)
            record.outputs = sorted(str(p.relative_to(folder / PARTIAL)) for p in (folder / PARTIAL).rglob("*")
                                    if p.is_file() and not p.name.startswith("."))
            (folder / PARTIAL).rename(folder / OUT)
            record.state = DONE
        except USER_ERRORS as error:
            record.state, record.error = FAILED, " ".join(str(error).split())
        except Exception:  # noqa: BLE001 - the server must outlive any one job; the traceback goes to the log
            logger.exception("job %s failed", record.job_id)
            record.state, record.error = FAILED, "internal error while predicting; see the server log."
        record.finished = time.time()
        self._save(record)

    def _clean(self) -> None:
        while not self._stop.wait(min(max(self.retention_s / 4, 0.5), 60.0)):
            now = time.time()
            for job_id, record in list(self.records.items()):
                if record.finished is not None and now - record.finished > self.retention_s:
                    self.delete(job_id)

    def _save(self, record: JobRecord) -> None:
        write_json_atomic(self.folder(record.job_id) / RECORD, asdict(record))


def restore_jobs(work_folder: Path) -> Dict[str, JobRecord]:
    """Records left by an earlier server: unfinished jobs become failed (partial outputs deleted); folders without a
    readable record (a crash during an upload) are deleted."""
    records = {}
    for folder in sorted(p for p in work_folder.iterdir() if p.is_dir()):
        try:
            record = JobRecord(**json.loads((folder / RECORD).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            shutil.rmtree(folder, ignore_errors=True)
            continue
        if record.state in (QUEUED, RUNNING):
            for leftover in (PARTIAL, OUT):
                shutil.rmtree(folder / leftover, ignore_errors=True)
            record.state, record.error, record.finished, record.outputs = FAILED, RESTARTED, time.time(), []
            write_json_atomic(folder / RECORD, asdict(record))
        records[record.job_id] = record
    return records
