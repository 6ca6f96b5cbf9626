"""The whole curation as one plain function: read reports, decompose their findings (the impression when a
report has none), RadLex-filter, balance (MetaCLIP), write tables, statistics, plots.

Rerunning with the same arguments resumes: the LLM backend takes every answered report from its
cache (``<out>/llm_cache/``) and the outputs are rewritten atomically. With ``num_shards > 1`` the
outputs of shard ``i`` go to ``<out>/shard-<i>-of-<N>/`` while all shards share ``<out>/llm_cache``;
a final unsharded run over the same ``--out`` then merges everything from the cache without new
LLM requests.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from tqdm import tqdm

from caption_curation.anatomy_tagger import default_tagger
from caption_curation.balancing import BalanceSettings, balance_captions
from nnunetv2_openvocab.atomic_files import atomic_write
from caption_curation.caption_cache import CaptionCache
from caption_curation.caption_plots import plot_all
from caption_curation.caption_prompt import CaptionPrompt
from caption_curation.caption_statistics import caption_statistics
from caption_curation.captions import CuratedReport
from caption_curation.chat_client import ChatCompletionsClient, RetryPolicy
from caption_curation.curation_outputs import write_captions_csv, write_failures, write_manifest
from caption_curation.llm_decomposer import LLMDecomposer
from caption_curation.offline_curation import curate_offline, filter_report
from caption_curation.radlex_filter import RadLexFilter
from caption_curation.reports import Report, read_reports
from caption_curation.sharding import check_shard, select_shard, shard_label
from nnunetv2_openvocab.user_errors import UserError

log = logging.getLogger(__name__)

CACHE_FOLDER = "llm_cache"
STATS_FILE = "caption_stats.json"
DEFAULT_MAX_FAILURE_RATE = 0.05


class CurationFailed(UserError):
    """Too many reports got no captions: the run exits non-zero although its outputs are written."""


@dataclass(frozen=True)
class LLMSettings:
    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this variable, never passed as a value
    workers: int = 8
    timeout_s: float = 120.0
    max_retries: int = 6
    retry_failed: bool = False
    prompt_path: Optional[Path] = None


@dataclass
class CurationSummary:
    output_dir: Path
    reports: int
    failed_reports: int
    captions_before_filter: int
    captions_kept: int
    files: list[Path] = field(default_factory=list)
    first_failure: Optional[str] = None

    def check_failure_rate(self, max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE) -> None:
        """Raise CurationFailed if every report failed or more than ``max_failure_rate`` of them did."""
        if not self.failed_reports:
            return
        counts = f"{self.failed_reports} of {self.reports} reports got no captions"
        where = f"see {self.output_dir / 'failures.jsonl'}; rerun with --retry-failed once the cause is fixed"
        if self.failed_reports == self.reports:
            raise CurationFailed(f"every request failed: {counts}; first reason: {self.first_failure} ({where}).")
        if self.failed_reports > max_failure_rate * self.reports:
            raise CurationFailed(f"{counts} ({self.failed_reports / self.reports:.1%}), more than --max-failure-rate "
                                 f"{max_failure_rate:g}; first reason: {self.first_failure} ({where}).")


@dataclass(frozen=True)
class _RunContext:
    out_dir: Path
    shard: int
    num_shards: int
    llm: Optional[LLMSettings]
    radlex_filter: RadLexFilter
    processes: Optional[int]


def _offline_curation(reports: list[Report], context: _RunContext) -> list[CuratedReport]:
    return curate_offline(reports, context.radlex_filter, context.processes)


def _llm_curation(reports: list[Report], context: _RunContext) -> list[CuratedReport]:
    settings = context.llm
    if settings is None or not settings.base_url or not settings.model:
        raise ValueError("the openai backend needs --base-url (e.g. http://localhost:8000/v1) and --model")
    api_key = os.environ.get(settings.api_key_env)
    if not api_key:
        log.warning("environment variable %s is not set: sending requests without an API key", settings.api_key_env)
    client = ChatCompletionsClient(
        settings.base_url,
        settings.model,
        api_key=api_key,
        timeout_s=settings.timeout_s,
        retry=RetryPolicy(max_retries=settings.max_retries),
    )
    cache = CaptionCache(
        context.out_dir / CACHE_FOLDER, f"answers.{shard_label(context.shard, context.num_shards)}.jsonl"
    )
    decomposer = LLMDecomposer(
        client, CaptionPrompt.load(settings.prompt_path), cache, workers=settings.workers,
        retry_failed=settings.retry_failed,
    )
    decomposed = decomposer.decompose_all(reports)
    progress = tqdm(decomposed, desc="RadLex filter", unit="report")
    return [filter_report(item, context.radlex_filter.matched_terms) for item in progress]


# each backend decomposes the reports and applies the RadLex filter
BACKENDS: dict[str, Callable[[list[Report], _RunContext], list[CuratedReport]]] = {
    "offline": _offline_curation,
    "openai": _llm_curation,
}


def _read_shard(reports_csv: str | Path, shard: int, num_shards: int) -> tuple[list[Report], list[str]]:
    read = read_reports(reports_csv)
    for problem in read.problems[:5]:
        log.warning(problem)
    if len(read.problems) > 5:
        log.warning("... %d more input problems, all in %s (run.input_problems)", len(read.problems) - 5, STATS_FILE)
    reports = select_shard(read.reports, shard, num_shards)
    log.info("%d of %d reports fall in shard %d of %d", len(reports), len(read.reports), shard, num_shards)
    return reports, read.problems


def _write_outputs(curated: list[CuratedReport], output_dir: Path, volume_root: Optional[str], run: dict,
                   balancing: Optional[dict]) -> list[Path]:
    files = [output_dir / "captions.csv", output_dir / "manifest.jsonl", output_dir / "failures.jsonl"]
    write_captions_csv(files[0], curated, volume_root)
    write_manifest(files[1], curated, volume_root)
    write_failures(files[2], curated)
    stats = {**caption_statistics(curated, default_tagger()), "balancing": balancing, "run": run}
    with atomic_write(output_dir / STATS_FILE) as handle:
        json.dump(stats, handle, indent=2, ensure_ascii=False)
    return files + [output_dir / STATS_FILE, *plot_all(stats, output_dir)]


def curate_captions(
    reports_csv: str | Path,
    out_dir: str | Path,
    backend: str = "offline",
    llm: Optional[LLMSettings] = None,
    radlex: str | Path | None = None,
    shard: int = 0,
    num_shards: int = 1,
    volume_root: Optional[str] = None,
    processes: Optional[int] = None,
    balance: Optional[BalanceSettings] = BalanceSettings(),
) -> CurationSummary:
    """Run the curation; ``processes`` (offline backend) defaults to min(4, CPU count); ``balance=None`` keeps
    every RadLex-matched caption (no MetaCLIP balancing)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {sorted(BACKENDS)}")
    check_shard(shard, num_shards)
    out_dir = Path(out_dir)
    output_dir = out_dir if num_shards == 1 else out_dir / shard_label(shard, num_shards)
    output_dir.mkdir(parents=True, exist_ok=True)

    reports, input_problems = _read_shard(reports_csv, shard, num_shards)
    radlex_filter = RadLexFilter.from_file(radlex)
    curated = BACKENDS[backend](reports, _RunContext(out_dir, shard, num_shards, llm, radlex_filter, processes))
    balancing = None
    if balance is not None:
        curated, balancing = balance_captions(curated, balance)

    uses_llm = backend == "openai" and llm is not None
    run = {
        "reports_csv": str(reports_csv),
        "backend": backend,
        "model": llm.model if uses_llm else None,
        "prompt": CaptionPrompt.load(llm.prompt_path).cache_id if uses_llm else None,
        "radlex_terms": radlex_filter.n_terms,
        "radlex_source": str(radlex) if radlex else "default (caption_curation/data/radlex_default_terms.txt)",
        "shard": shard,
        "num_shards": num_shards,
        "input_problems": input_problems,
    }
    files = _write_outputs(curated, output_dir, volume_root, run, balancing)
    succeeded = [item for item in curated if item.failure is None]
    failures = [item.failure for item in curated if item.failure is not None]
    return CurationSummary(
        output_dir=output_dir,
        reports=len(curated),
        failed_reports=len(curated) - len(succeeded),
        captions_before_filter=sum(len(item.raw_captions) for item in succeeded),
        captions_kept=sum(len(item.kept) for item in succeeded),
        files=files,
        first_failure=failures[0] if failures else None,
    )
