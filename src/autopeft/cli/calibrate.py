"""`autopeft calibrate`: parse, call `autopeft.search.calibrate`, print the ladder (exit 1 without signal)."""

from __future__ import annotations

import argparse
import json
import sys

from autopeft.cli.options import (
    add_data_arguments,
    add_device_argument,
    add_fidelity_arguments,
    add_model_argument,
    add_storage_argument,
    fidelity_from_args,
    parse_seeds,
    task_args_from,
)
from autopeft.names import SPACES
from autopeft.search.calibrate import CALIBRATION_BASE, LADDER

HELP = "find the cheapest search fidelity with signal: configurations apart from seed noise and above the floor"
_LADDER = ",".join(f"{n}x{e}" for n, e in LADDER)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    add_data_arguments(parser)
    parser.add_argument("--space", choices=SPACES, default="paper")
    parser.add_argument("--max-minutes", type=float, default=30.0, help="time cap of the whole probe (default 30)")
    parser.add_argument("--ladder", default=_LADDER, help=f"rungs EXAMPLESxEPOCHS, cheapest first (default {_LADDER})")
    parser.add_argument("--configs", type=int, default=4, help="random configurations per rung (default 4)")
    parser.add_argument("--seeds", default="0,1", help="training seeds of each configuration (default 0,1)")
    add_fidelity_arguments(parser, CALIBRATION_BASE + " (the ladder sets epochs and max_train_samples)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, in worker processes (default 1)")
    parser.add_argument("--study", help="the probe's study (default probe-<task>-<model>-<space>)")
    add_storage_argument(parser)
    add_device_argument(parser)


def run(args: argparse.Namespace) -> int:
    from autopeft.engine import Fidelity
    from autopeft.search.calibrate import Calibration, Rung, calibrate, ladder_table

    request = Calibration(
        model=args.model,
        data=task_args_from(args),
        base=fidelity_from_args(args, Fidelity.parse(CALIBRATION_BASE)),
        space=args.space,
        ladder=tuple(Rung.parse(r.strip()) for r in args.ladder.split(",") if r.strip()),
        configs=args.configs,
        seeds=tuple(parse_seeds(args.seeds)),
        max_minutes=args.max_minutes,
        jobs=args.jobs,
        device=args.device,
        storage=args.storage,
        study=args.study,
    )
    probe = calibrate(request, log=lambda line: print(line, file=sys.stderr, flush=True))
    print("\n".join(ladder_table(probe)))
    if probe["chosen"] is None:
        print(
            f"no rung within {args.max_minutes:g} minutes has signal (ratio >= {probe['min_ratio']:g} and margin >= "
            f"{probe['min_margin']:g} SE): try a larger --max-minutes, larger rungs, or another task",
            file=sys.stderr,
        )
    print(json.dumps({k: v for k, v in probe.items() if k != "rungs"} | {"ladder": _figures(probe)}))
    return 0 if probe["chosen"] is not None else 1


def _figures(probe: dict) -> list[dict]:
    keys = ("rung", "seconds_per_trial", "ratio", "margin", "best", "floor", "se", "has_signal")
    return [{k: r[k] for k in keys} for r in probe["rungs"]]
