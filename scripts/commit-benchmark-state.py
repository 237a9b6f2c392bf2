#!/usr/bin/env python3
"""Commit the long benchmarks' state (the tracked files under data/) as it stands.

The GLUE study is a live SQLite file: it is added to git while holding its write lock, so the
committed copy is never caught in the middle of a transaction.

    scripts/commit-benchmark-state.py "GLUE bench: 40 of 117 runs"
"""

import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT / "data" / "studies" / "glue-minilm.db"


def main() -> int:
    message = sys.argv[1] if len(sys.argv) > 1 else "Long benchmarks: state so far"
    lock = None
    if STUDY.is_file():
        lock = sqlite3.connect(STUDY, timeout=120, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # writers wait; the file does not change until the rollback
    try:
        subprocess.run(["git", "add", "data"], cwd=ROOT, check=True)
    finally:
        if lock is not None:
            lock.execute("ROLLBACK")
            lock.close()
    staged = subprocess.run(["git", "diff", "--cached", "--quiet", "--", "data"], cwd=ROOT)
    if staged.returncode == 0:
        print("nothing new under data/")
        return 0
    return subprocess.run(["git", "commit", "-q", "-m", message, "--", "data"], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
