"""Worker processes: fresh interpreters that share the cores evenly, and a GPU when they train on one.

Spawned, not forked, so no worker inherits torch's thread pools (or a CUDA context) from its parent;
each sets torch to its share of the cores, and of a shared GPU's memory, before its own initializer runs.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def spawn_pool(
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    *,
    share_device: str | None = None,
) -> ProcessPoolExecutor:
    """A pool of `workers` spawned processes, each with torch at cores // workers threads (at least 1).

    initializer: a module-level function (it is pickled), called with `initargs` in each worker.
    share_device: the device the workers train on, resolved (`autopeft.engine.devices.resolve_device`);
    on a CUDA device each worker's allocator is capped at 1/workers of its memory. None: no GPU set-up.
    """
    threads = max(1, (os.cpu_count() or 1) // workers)
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(), threads, workers, share_device, initializer, initargs),
    )


def _start_worker(
    parent: int,
    threads: int,
    workers: int,
    share_device: str | None,
    initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
) -> None:
    _exit_with_parent(parent)  # first: importing torch takes seconds, and the parent may die meanwhile
    import torch

    torch.set_num_threads(threads)
    if share_device is not None:
        from autopeft.engine.devices import share_gpu

        share_gpu(share_device, workers)
    if initializer is not None:
        initializer(*initargs)


def _exit_with_parent(parent: int, interval: float = 2.0) -> None:
    """End this worker when the process that spawned it (pid `parent`) is gone (killed, even by SIGKILL),
    instead of training on as an orphan that nobody reads: a daemon thread watches the parent's pid.
    The pid comes from the parent itself, so a worker whose parent died before it started ends too."""
    import threading
    import time

    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
