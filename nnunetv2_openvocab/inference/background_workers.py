"""Background processes for preprocessing and export, as nnU-Net's ``-npp`` and ``-nps`` do.

While the network works on one case, ``preprocessed_cases`` reads and preprocesses the next ones in
``preprocessing`` worker processes, and ``ExportQueue`` compresses and writes finished masks and probability
maps in ``export`` worker processes. Both use the spawn start method (forking a process that runs torch
threads can deadlock) and bound what waits, so memory stays at a few cases and a few masks. With 0 workers
everything runs inline in the calling process, in the same order.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Callable, Deque, Iterable, Iterator, Optional, Tuple, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


@dataclass(frozen=True)
class Workers:
    """nnU-Net's ``-npp`` (preprocessing) and ``-nps`` (export) process counts; 0 runs that stage inline."""

    preprocessing: int = 0
    export: int = 0

    def __post_init__(self):
        if self.preprocessing < 0 or self.export < 0:
            raise ValueError(f"-npp and -nps must be >= 0 (0 = in the main process), got {self.preprocessing} and "
                             f"{self.export}.")


def _pool(processes: int) -> Executor:
    return ProcessPoolExecutor(processes, mp_context=get_context("spawn"))


def prefetched(jobs: Iterable[Job], load: Callable[[Job], Result], processes: int) -> Iterator[Tuple[Job, Result]]:
    """(job, load(job)) in job order; with ``processes`` > 0 the next ``processes`` jobs load in the background
    (``load`` must be picklable: a module-level function or a partial of one)."""
    if processes == 0:
        yield from ((job, load(job)) for job in jobs)
        return
    pending: Deque[Tuple[Job, Future]] = deque()
    remaining = iter(jobs)
    with _pool(processes) as pool:
        try:
            for job in remaining:
                pending.append((job, pool.submit(load, job)))
                if len(pending) > processes:
                    job, future = pending.popleft()
                    yield job, future.result()
            while pending:
                job, future = pending.popleft()
                yield job, future.result()
        finally:  # a failure or an abandoned iteration cancels what has not started
            for _, future in pending:
                future.cancel()


class ExportQueue:
    """Runs output writes in ``processes`` background processes, or inline when 0. At most ``2 * processes``
    writes wait (nnU-Net allows a few queued exports per worker), so finished masks do not pile up in memory.
    ``wait`` re-raises the first failed write."""

    def __init__(self, processes: int):
        self.processes = processes
        self.pool: Optional[Executor] = _pool(processes) if processes else None
        self.pending: Deque[Future] = deque()

    def submit(self, function: Callable, *args) -> None:
        if self.pool is None:
            function(*args)
            return
        while len(self.pending) >= 2 * self.processes:
            self.pending.popleft().result()
        self.pending.append(self.pool.submit(function, *args))

    def wait(self) -> None:
        while self.pending:
            self.pending.popleft().result()

    def __enter__(self) -> "ExportQueue":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            if exc_type is None:
                self.wait()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
