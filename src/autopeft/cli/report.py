"""`autopeft report`: the Pareto table, budgets, plots and retrained results of a search study."""

from __future__ import annotations

import argparse
from pathlib import Path

from autopeft.cli.options import add_storage_argument

HELP = "write report.md, pareto.csv/json and plots for a search study"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_storage_argument(parser)
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--out", type=Path, help="output folder (default: reports/<study>)")


def run(args: argparse.Namespace) -> int:
    from autopeft.search.report import pareto_text, write_report
    from autopeft.search.storage import open_study

    study, _ = open_study(args.study, args.storage)
    out = args.out or Path("reports") / args.study
    paths = write_report(study, out)
    print(pareto_text(study))
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
