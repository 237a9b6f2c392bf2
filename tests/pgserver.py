"""A private PostgreSQL server for tests: initdb and pg_ctl from the machine's postgresql package."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if isinstance(found, list):
        return found[-1] if found else None
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server(folder: Path) -> Iterator[str]:
    """Start a server in `folder` on a free loopback port; yield its URL; stop it afterwards.

    PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user.
    """
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are missing: apt-get install postgresql")
    data = folder / "pgdata"
    folder.mkdir(parents=True, exist_ok=True)
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chmod(folder, 0o755)
        for parent in folder.parents:  # the postgres user must reach the folder
            if str(parent).startswith(("/tmp", str(Path.home()))) and parent != Path("/tmp"):
                os.chmod(parent, os.stat(parent).st_mode | 0o011)
        os.chown(folder, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run(
        [*prefix, initdb, "-D", str(data), "-U", "autopeft", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    log = folder / "server.log"
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=50 -c fsync=off"
    subprocess.run([*prefix, pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "start"], check=True)
    try:
        url = f"postgresql://autopeft@127.0.0.1:{port}/postgres"
        deadline = time.time() + 30
        while True:
            ready = subprocess.run([*prefix, pg_ctl, "-D", str(data), "status"], capture_output=True)
            if ready.returncode == 0 or time.time() > deadline:
                break
            time.sleep(0.2)
        yield url
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
