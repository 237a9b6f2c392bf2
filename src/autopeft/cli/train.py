"""`autopeft train`: train one configuration (or baseline) on a task for several seeds; mean and std.

By default a final run as in the paper: train on the training set, score on dev, 20 epochs with
early stopping after 10 epochs without improvement. Prints one line per seed and, last, one line
of JSON with task, metric_name, mean, std, params and percent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from autopeft.cli.options import (
    add_data_arguments,
    add_device_argument,
    add_fidelity_arguments,
    add_model_argument,
    fidelity_from_args,
    parse_seeds,
    task_args_from,
)
from autopeft.errors import UserError
from autopeft.methods import METHODS
from autopeft.names import MODES

HELP = "train a configuration or baseline on a task over seeds and report the mean and std"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--config", metavar="FILE", help="configuration JSON file (or inline JSON), as `autopeft space`")
    what.add_argument("--method", metavar="NAME", help=f"a baseline: {', '.join(METHODS)}")
    add_data_arguments(parser)
    add_fidelity_arguments(parser, "the paper's final runs: epochs=20,patience=10")
    parser.add_argument(
        "--seeds", default="42", help="comma-separated training seeds (default 42; the paper: 40,...,44)"
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="final",
        help="final: train on train, score on dev (default); search: score on a held-out slice of train",
    )
    parser.add_argument("--out", metavar="DIR", help="write each seed's metrics, configuration and adapters here")
    add_device_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def read_config(text: str) -> Any:
    """A PEFTConfig from a JSON file, or from inline JSON (a JSON object, as `autopeft space` prints)."""
    import json

    from autopeft.space import PEFTConfig

    path = Path(text)
    if path.is_file():
        try:
            return PEFTConfig.from_json(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text") from None
        except OSError as err:
            raise UserError(f"--config {path}: {err.strerror}") from None
    if path.is_dir():
        raise UserError(f"--config {text} is a folder, not a JSON file")
    if text.lstrip().startswith("{"):
        return PEFTConfig.from_json(text)
    try:
        data = json.loads(text)
    except ValueError:
        raise UserError(f"--config {text}: no such file (give a JSON file or inline JSON)") from None
    raise UserError(
        f'--config {text} is not a JSON object (e.g. {{"serial": 24, "layers": [0, 1]}}), '
        f"but a JSON {type(data).__name__}"
    )


def run(args: argparse.Namespace) -> int:
    from autopeft.engine import Fidelity
    from autopeft.engine.seeds import SeedRuns, train_seeds

    seeds = parse_seeds(args.seeds)
    fidelity = fidelity_from_args(args, Fidelity.paper_final())
    if args.method is not None and args.method not in METHODS:
        raise UserError(f"unknown method {args.method!r}; known: {', '.join(METHODS)}")
    request = SeedRuns(
        model=args.model,
        data=task_args_from(args),
        item=read_config(args.config) if args.config is not None else args.method,
        fidelity=fidelity,
        seeds=tuple(seeds),
        mode=args.mode,
        out=Path(args.out) if args.out else None,
        device=args.device,
        progress=False if args.no_progress else None,
    )
    summary = train_seeds(request, log=lambda line: print(line, flush=True))
    print(json.dumps(summary), flush=True)
    if not summary["n"]:
        print("autopeft train: every seed failed", file=sys.stderr)
        return 1
    return 0
