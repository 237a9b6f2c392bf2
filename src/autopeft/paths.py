"""Output folders checked before any work: a command that cannot write its results says so first."""

from __future__ import annotations

import os
from pathlib import Path

from autopeft.errors import UserError


def check_output_folder(out: Path, *, empty: bool = False, flag: str = "--out") -> None:
    """Raise UserError unless `out` can be created or written: not a file, inside a writable folder,
    and (with `empty`) new or empty. Creates nothing."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out} is a file, not a folder")
    if empty and out.is_dir() and any(out.iterdir()):
        raise UserError(f"{flag} {out} exists and is not empty")
    parent = next((p for p in [out, *out.parents] if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {out} cannot be written ({parent} is not a writable folder)")


def check_output_file(path: Path, *, flag: str = "--out") -> None:
    """Raise UserError unless the file `path` can be written: not a folder, not read-only, in a folder that
    exists or can be created. Creates nothing (a results file refused after hours of training is lost work)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder, not a file")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{flag} {path} is not writable")
    check_output_folder(path.parent, flag=flag)
