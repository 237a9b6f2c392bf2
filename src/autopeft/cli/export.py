"""`autopeft export`: a trial's trained model (adapters' or Hugging Face peft's format), its config and metrics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from autopeft.cli.options import add_device_argument, add_glue_dir_argument, add_storage_argument
from autopeft.search.followup import EXPORT_FORMATS

HELP = "export a trial's trained adapter (adapters' or Hugging Face peft's format) with its configuration and metrics"
LOADERS = {
    "adapters": "autopeft.engine.load_trial, or adapters' load_adapter/load_head with use_safetensors=True",
    "peft": "peft's PeftModel.from_pretrained, or autopeft.peft.hf_export.load_peft_export",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_storage_argument(parser)
    parser.add_argument("--study", required=True)
    parser.add_argument("--trial", type=int, required=True, help="trial number")
    parser.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    parser.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default="adapters",
        help="adapters: the trial folder (adapters' load_adapter/load_head); peft: a Hugging Face peft adapter "
        "(LoRA configurations only)",
    )
    parser.add_argument(
        "--artifacts",
        type=Path,
        metavar="DIR",
        help="the search's --artifacts: trial folders are copied only from DIR/<study> (default studies/artifacts)",
    )
    add_glue_dir_argument(parser, "GLUE folder on this machine, if the trial must be retrained")
    add_device_argument(parser)


def run(args: argparse.Namespace) -> int:
    from autopeft.search.followup import export_trial
    from autopeft.search.storage import open_study

    study, _ = open_study(args.study, args.storage)
    info = export_trial(
        study,
        args.trial,
        args.out,
        format=args.format,
        artifacts=args.artifacts,
        device=args.device,
        glue_dir=args.glue_dir,
    )
    print(f"exported trial {args.trial} to {args.out}: load it with {LOADERS[args.format]}")
    print(json.dumps(info))
    return 0
