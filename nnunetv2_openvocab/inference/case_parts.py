"""nnU-Net's ``-num_parts N -part_id i``: split one folder of cases across N processes or machines.

Part i takes every N-th case of the sorted case list starting at the i-th (nnU-Net's ``cases[part_id::num_parts]``),
so N runs with part ids 0..N-1 on the same input predict every case exactly once, whatever machine runs which
part. Cases of a ``--prompts-file`` are split in the file's order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, TypeVar

Case = TypeVar("Case")


@dataclass(frozen=True)
class CasePart:
    num_parts: int = 1
    part_id: int = 0

    def __post_init__(self):
        if self.num_parts < 1 or not 0 <= self.part_id < self.num_parts:
            raise ValueError(f"-part_id must be in 0..{max(self.num_parts, 1) - 1} and -num_parts >= 1 (nnU-Net counts "
                             f"parts from 0), got -num_parts {self.num_parts} -part_id {self.part_id}.")

    def select(self, cases: Sequence[Case]) -> List[Case]:
        return list(cases)[self.part_id::self.num_parts]
