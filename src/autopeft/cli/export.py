"""`autopeft export`: a trial's trained adapter, in the adapters library's format, with its config and metrics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from autopeft.cli.options import add_device_argument, add_glue_dir_argument, add_storage_argument

HELP = "export a trial's trained adapter (adapters format) with its configuration and metrics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_storage_argument(parser)
    parser.add_argument("--study", required=True)
    parser.add_argument("--trial", type=int, required=True, help="trial number")
    parser.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    add_glue_dir_argument(parser, "GLUE folder on this machine, if the trial must be retrained")
    add_device_argument(parser)


def run(args: argparse.Namespace) -> int:
    from autopeft.search.followup import export_trial
    from autopeft.search.storage import load_study, open_storage

    study = load_study(args.study, open_storage(args.storage))
    info = export_trial(study, args.trial, args.out, device=args.device, glue_dir=args.glue_dir)
    print(
        f"exported trial {args.trial} to {args.out}: load it with autopeft.engine.load_trial or adapters' load_adapter"
    )
    print(json.dumps(info))
    return 0
