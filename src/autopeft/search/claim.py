"""Claiming the next trial of a shared study without overshooting its budget.

Workers on one study count its trials and create the next one under one lock, so two of them never
both take the last place: an flock on a file beside an SQLite database (its workers share one
machine), a PostgreSQL advisory lock keyed by the study's name (workers anywhere). Other storages
have no lock; the search loop's rank check still keeps their budget exact.
"""

from __future__ import annotations

import contextlib
import fcntl
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna


@contextlib.contextmanager
def budget_lock(study: optuna.Study) -> Iterator[None]:
    """Held while a worker counts the study's trials and creates its next one."""
    # a study over an RDB storage holds it inside Optuna's cache, which does not expose the engine
    storage = getattr(study._storage, "_backend", study._storage)
    url = str(getattr(getattr(storage, "engine", None), "url", ""))
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        lock_path = Path(url.removeprefix("sqlite:///") + ".autopeft-lock")
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif url.startswith("postgresql"):
        import sqlalchemy

        key = zlib.crc32(f"autopeft:{study.study_name}".encode()) - 2**31  # a signed 32-bit advisory key
        with storage.engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    else:
        yield
