"""The few-shot prompt for LLM decomposition, kept as a versioned data file (data/caption_prompt_v1.json).

File format: ``version`` (str), ``instruction`` (the paper's system instruction), ``answer_format``
(the JSON shape the answer must have) and ``examples``, a list of ``{"report": str, "answer":
{"captions": [{"caption": str, "source_sentence": str}]}}``. The examples become alternating
user/assistant turns before the report to decompose.

``cache_id`` (version plus a digest of the file) is part of every cache key, so editing the prompt,
even without bumping ``version``, never reuses answers given to the old one.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from nnunetv2_openvocab.json_input import read_json_file

DEFAULT_PROMPT_PATH = Path(__file__).resolve().parent / "data" / "caption_prompt_v1.json"
_REQUIRED_FIELDS = ("version", "instruction", "answer_format", "examples")


def _user_turn(report_text: str) -> dict:
    return {"role": "user", "content": f"Radiology report:\n{report_text}"}


@dataclass(frozen=True)
class CaptionPrompt:
    version: str
    instruction: str
    answer_format: str
    examples: tuple[dict, ...]
    cache_id: str

    @classmethod
    def load(cls, path: str | Path | None = None) -> "CaptionPrompt":
        path = Path(path) if path is not None else DEFAULT_PROMPT_PATH
        fix = f"See {DEFAULT_PROMPT_PATH} for the format."
        data = read_json_file(path, fix, what="prompt file")
        raw = path.read_bytes()
        missing = [name for name in _REQUIRED_FIELDS if not isinstance(data, dict) or name not in data]
        if missing:
            raise ValueError(f"prompt file {path}: missing field(s) {missing}. {fix}")
        if not isinstance(data["examples"], list) or not all(
                isinstance(data[name], str) for name in ("instruction", "answer_format")):
            raise ValueError(f"prompt file {path}: 'instruction' and 'answer_format' must be text and 'examples' a "
                             f"list. {fix}")
        for index, example in enumerate(data["examples"]):
            if not isinstance(example, dict) or not isinstance(example.get("report"), str) or not isinstance(example.get("answer"), dict):
                raise ValueError(f"prompt file {path}: examples[{index}] needs a 'report' string and an 'answer' object")
        return cls(
            version=str(data["version"]),
            instruction=data["instruction"],
            answer_format=data["answer_format"],
            examples=tuple(data["examples"]),
            cache_id=f"{data['version']}:{hashlib.sha256(raw).hexdigest()[:12]}",
        )

    def messages(self, report_text: str) -> list[dict]:
        """Chat-completions messages: system instruction, few-shot turns, then the report."""
        turns = [{"role": "system", "content": f"{self.instruction}\n\n{self.answer_format}"}]
        for example in self.examples:
            turns.append(_user_turn(example["report"]))
            turns.append({"role": "assistant", "content": json.dumps(example["answer"], ensure_ascii=False)})
        turns.append(_user_turn(report_text))
        return turns
