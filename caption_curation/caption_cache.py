"""Crash-safe on-disk cache of LLM answers, so a rerun never asks the LLM about the same report twice.

Layout: a folder of append-only JSON-lines files, one per writer (``answers.shard-<i>-of-<N>.jsonl``),
all read on start. One line per finished request::

    {"key": <sha256 hex>, "model": str, "prompt": <prompt cache_id>, "status": "ok" | "malformed" |
     "request_failed", "captions": [{"caption": str, "source_sentence": str}], "error": str, "raw": str}

``key`` = sha256 of the JSON list ``[model, prompt cache_id, report text]``. ``raw`` (the model's
redacted answer) is kept for failures only, so they can be inspected. Each line is written with one
``write`` on an O_APPEND descriptor and fsync'ed before the next request's result is accepted, so a
kill -9 loses at most the line being written; a torn last line is skipped with a warning on load and
fenced off by a newline before the next append. A later line for the same key wins (retried failures).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from caption_curation.captions import Caption

log = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_MALFORMED = "malformed"
STATUS_REQUEST_FAILED = "request_failed"


def cache_key(report_text: str, model: str, prompt_id: str) -> str:
    return hashlib.sha256(json.dumps([model, prompt_id, report_text]).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedAnswer:
    key: str
    model: str
    prompt: str
    status: str
    captions: tuple[Caption, ...] = ()
    error: str = ""
    raw: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "key": self.key,
                "model": self.model,
                "prompt": self.prompt,
                "status": self.status,
                "captions": [{"caption": c.text, "source_sentence": c.source_sentence} for c in self.captions],
                "error": self.error,
                "raw": self.raw,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, line: str) -> "CachedAnswer":
        data = json.loads(line)
        captions = tuple(Caption(text=c["caption"], source_sentence=c["source_sentence"]) for c in data["captions"])
        return cls(data["key"], data["model"], data["prompt"], data["status"], captions, data["error"], data["raw"])


class CaptionCache:
    def __init__(self, folder: str | Path, writer_name: str = "answers.jsonl"):
        self.folder = Path(folder)
        self.path = self.folder / writer_name
        self._lock = threading.Lock()
        self._fd: int | None = None

    def load(self) -> dict[str, CachedAnswer]:
        answers: dict[str, CachedAnswer] = {}
        for path in sorted(self.folder.glob("*.jsonl")):
            with open(path, encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        answer = CachedAnswer.from_json(line)
                    except (ValueError, KeyError, TypeError):
                        log.warning("%s line %d: unreadable cache record (interrupted write?), ignored", path, number)
                        continue
                    answers[answer.key] = answer
        return answers

    def _open(self) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(fd).st_size
        if size:
            with open(self.path, "rb") as handle:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":
                    os.write(fd, b"\n")  # fence off a line torn by a kill
        return fd

    def append(self, answer: CachedAnswer) -> None:
        data = (answer.to_json() + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                self._fd = self._open()
            os.write(self._fd, data)
            os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
