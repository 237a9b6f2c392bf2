"""`autopeft export`: a trial's trained adapter, in the adapters library's format, with its config and metrics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "export a trial's trained adapter (adapters format) with its configuration and metrics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage", help="study storage URL (default: $AUTOPEFT_STORAGE or sqlite:///studies/autopeft.db)"
    )
    parser.add_argument("--study", required=True)
    parser.add_argument("--trial", type=int, required=True, help="trial number")
    parser.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    parser.add_argument("--glue-dir", metavar="DIR", help="GLUE folder on this machine, if the trial must be retrained")
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")


def run(args: argparse.Namespace) -> int:
    from autopeft.cli.search import study_task
    from autopeft.followup import export_trial
    from autopeft.study import load_study, open_storage

    study = load_study(args.study, open_storage(args.storage))

    def make_engine():
        from autopeft.engine import Engine

        return Engine(study.user_attrs["model"], study_task(study, args.glue_dir), device=args.device)

    info = export_trial(study, args.trial, args.out, make_engine)
    print(
        f"exported trial {args.trial} to {args.out}: load it with autopeft.engine.load_trial or adapters' load_adapter"
    )
    print(json.dumps(info))
    return 0
