"""Map a per-item worker over items in a process pool with a tqdm progress bar, surviving worker crashes."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Callable, List, Sequence, TypeVar

from tqdm import tqdm

Item = TypeVar("Item")
Result = TypeVar("Result")


def run_parallel(worker: Callable[[Item], Result], items: Sequence[Item], num_processes: int, desc: str,
                 on_crash: Callable[[Item, BaseException], Result]) -> List[Result]:
    """Results in completion order. ``worker`` must be picklable (a module-level function or a partial of one).

    ``on_crash`` turns an exception that escaped the worker (e.g. a process killed for memory) into a result, so one
    bad item never ends the run. With one process (or one item) everything runs in this process.
    """
    if num_processes <= 1 or len(items) <= 1:
        results = []
        for item in tqdm(items, desc=desc, unit="case"):
            try:
                results.append(worker(item))
            except Exception as err:
                results.append(on_crash(item, err))
        return results
    results = []
    # spawn: workers start clean (no locks or threads inherited from the caller, e.g. a notebook or torch)
    with ProcessPoolExecutor(max_workers=num_processes, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(worker, item): item for item in items}
        for future in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="case"):
            try:
                results.append(future.result())
            except Exception as err:
                results.append(on_crash(futures[future], err))
    return results
