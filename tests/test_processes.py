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
