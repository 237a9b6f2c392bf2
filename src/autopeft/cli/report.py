"""`autopeft report`: the Pareto table, budgets, plots and retrained results of a search study."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write report.md, pareto.csv/json and plots for a search study"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage", help="study storage URL (default: $AUTOPEFT_STORAGE or sqlite:///studies/autopeft.db)"
    )
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--out", type=Path, help="output folder (default: reports/<study>)")


def run(args: argparse.Namespace) -> int:
    from autopeft.report import pareto_text, write_report
    from autopeft.study import load_study, open_storage

    study = load_study(args.study, open_storage(args.storage))
    out = args.out or Path("reports") / args.study
    paths = write_report(study, out)
    print(pareto_text(study))
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
