"""Worker processes for CPU-bound work: fresh interpreters that share the cores evenly.

Spawned, not forked, so no worker inherits torch's thread pools from its parent; each sets torch to
its share of the cores before its own initializer runs.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def spawn_pool(
    workers: int, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
) -> ProcessPoolExecutor:
    """A pool of `workers` spawned processes, each with torch at cores // workers threads (at least 1).

    initializer: a module-level function (it is pickled), called with `initargs` in each worker.
    """
    threads = max(1, (os.cpu_count() or 1) // workers)
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(threads, initializer, initargs),
    )


def _start_worker(threads: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    import torch

    torch.set_num_threads(threads)
    if initializer is not None:
        initializer(*initargs)
