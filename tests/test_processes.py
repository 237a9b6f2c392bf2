import os

import torch

from autopeft.processes import spawn_pool


def _threads_and_marker() -> tuple[int, str | None]:
    return torch.get_num_threads(), os.environ.get("AUTOPEFT_TEST_MARKER")


def _set_marker(value: str) -> None:
    os.environ["AUTOPEFT_TEST_MARKER"] = value


def test_workers_share_the_cores_and_run_their_initializer():
    with spawn_pool(2, _set_marker, ("started",)) as pool:
        results = [pool.submit(_threads_and_marker).result() for _ in range(2)]
    assert results == [(max(1, (os.cpu_count() or 1) // 2), "started")] * 2


def test_workers_end_when_their_parent_is_killed(tmp_path):
    """A parent killed by SIGKILL (no chance to shut its pool down) leaves no busy worker running on."""
    import signal
    import subprocess
    import sys
    import time

    pids = tmp_path / "pids"
    script = f"""
import os, time
from autopeft.processes import spawn_pool
pool = spawn_pool(2)
workers = [pool.submit(os.getpid).result() for _ in range(4)]
busy = [pool.submit(time.sleep, 600) for _ in range(2)]  # workers in the middle of a long task
time.sleep(1)
open({str(pids)!r}, "w").write(" ".join(map(str, set(workers))))
time.sleep(600)
"""
    parent = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 120
    while not (pids.is_file() and pids.read_text()) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(5)  # let the pool start the workers of the busy tasks too
    workers = {int(p) for p in pids.read_text().split()} | _children(parent.pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.5)
    assert workers and not any(_alive(p) for p in workers)


def _children(pid: int) -> set[int]:
    """Every process `pid` started (the workers, whenever the pool spawned them)."""
    from pathlib import Path

    return {int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False
