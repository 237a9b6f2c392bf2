#!/usr/bin/env python3
"""Commit the long benchmarks' state (the tracked files under data/) as it stands.

The studies are live SQLite files: each is added to git while holding its write lock, so no
committed copy is caught in the middle of a transaction.

    scripts/commit-benchmark-state.py "GLUE bench: 40 of 117 runs"
    scripts/commit-benchmark-state.py --every 480 "state so far"   # again and again, while the benchmarks run
"""

import contextlib
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUDIES = ROOT / "data" / "studies"


@contextlib.contextmanager
def write_locked(path: Path):
    """Writers to the SQLite file `path` wait, and the file does not change, until this ends."""
    lock = sqlite3.connect(path, timeout=120, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        lock.execute("ROLLBACK")
        lock.close()


def main() -> int:
    args = sys.argv[1:]
    every = None
    if args[:1] == ["--every"]:
        every, args = float(args[1]), args[2:]
    message = args[0] if args else "Long benchmarks: state so far"
    if every is None:
        return commit(message)
    while True:  # a session ends abruptly: what is committed is what the next one starts from
        time.sleep(every)
        commit(message)


def commit(message: str) -> int:
    with contextlib.ExitStack() as locks:
        for study in sorted(STUDIES.glob("*.db")):
            locks.enter_context(write_locked(study))
        subprocess.run(["git", "add", "data"], cwd=ROOT, check=True)
    staged = subprocess.run(["git", "diff", "--cached", "--quiet", "--", "data"], cwd=ROOT)
    if staged.returncode == 0:
        print("nothing new under data/")
        return 0
    return subprocess.run(["git", "commit", "-q", "-m", message, "--", "data"], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
