"""Deterministic split of the reports over ``num_shards`` workers (SLURM array tasks, machines).

A report's shard is its content hash modulo ``num_shards``: identical reports (CT-RATE's
reconstructions of one study) land in the same shard, so no two shards ask the LLM the same thing,
and the split does not depend on row order.
"""
from __future__ import annotations

from caption_curation.reports import Report


def check_shard(shard: int, num_shards: int) -> None:
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(
            f"--shard {shard} --num-shards {num_shards}: need num_shards >= 1 and 0 <= shard < num_shards "
            "(e.g. --shard $SLURM_ARRAY_TASK_ID with an array 0..N-1)"
        )


def shard_of(report: Report, num_shards: int) -> int:
    return int(report.content_hash[:16], 16) % num_shards


def select_shard(reports: list[Report], shard: int, num_shards: int) -> list[Report]:
    check_shard(shard, num_shards)
    return [report for report in reports if shard_of(report, num_shards) == shard]


def shard_label(shard: int, num_shards: int) -> str:
    return f"shard-{shard:03d}-of-{num_shards:03d}"
