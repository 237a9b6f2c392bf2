"""`autopeft` run in the test's own process (its imports paid once), for checks of exit codes and output."""

from __future__ import annotations

from autopeft.cli import main


def exit_code(argv: list[str]) -> int:
    """The exit code of `autopeft ARGV`, whether `main` returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
