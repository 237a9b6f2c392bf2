"""`autopeft bench modules`: parse, call `autopeft.bench.modules`, print the table by module kind."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from autopeft.bench.modules import MODULES_FIDELITY, SIZES
from autopeft.cli.options import (
    add_device_argument,
    add_fidelity_arguments,
    add_glue_dir_argument,
    add_model_argument,
    fidelity_from_args,
    parse_seeds,
)
from autopeft.errors import UserError
from autopeft.modules import MODULES

HELP = "every module kind alone at three sizes (and two mixes): share of runs at the floor, mean ± std"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    add_glue_dir_argument(parser)
    parser.add_argument("--tasks", default="stsb,mrpc", help="comma-separated GLUE tasks (default stsb,mrpc)")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds (default 0,1,2)")
    add_fidelity_arguments(parser, MODULES_FIDELITY)
    parser.add_argument("--lrs", help="a grid of learning rates, e.g. 1e-4,3e-4,1e-3 (default: the fidelity's)")
    parser.add_argument("--kinds", default=",".join(MODULES), help=f"module kinds (default {','.join(MODULES)})")
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"size labels (default {','.join(SIZES)})")
    parser.add_argument("--no-mixed", action="store_true", help="leave out the two mixed configurations")
    parser.add_argument("--out", type=Path, required=True, help="the runs CSV (created or continued)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, in worker processes (default 1)")
    add_device_argument(parser)


def run(args: argparse.Namespace) -> int:
    from autopeft.bench.glue import named_tasks
    from autopeft.bench.modules import ModulesBench, run_modules_bench
    from autopeft.engine import Fidelity

    try:
        lrs = tuple(float(v) for v in args.lrs.split(",") if v.strip()) if args.lrs else None
    except ValueError:
        raise UserError(f"--lrs {args.lrs!r} is not a comma-separated list of learning rates") from None
    bench = ModulesBench(
        model=args.model,
        tasks=tuple(named_tasks(args.tasks)),
        fidelity=fidelity_from_args(args, Fidelity.parse(MODULES_FIDELITY)),
        out=args.out,
        seeds=tuple(parse_seeds(args.seeds)),
        lrs=lrs,
        glue_dir=args.glue_dir,
        jobs=args.jobs,
        device=args.device,
        kinds=tuple(k.strip() for k in args.kinds.split(",") if k.strip()),
        sizes=tuple(s.strip() for s in args.sizes.split(",") if s.strip()),
        mixed=not args.no_mixed,
    )
    summary = run_modules_bench(bench, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"{'task':6s} {'lr':>7s} {'kind':9s} {'runs':>4s} {'at floor':>8s} {'mean ± std':>15s} {'seed std':>8s}")
    for task, by_lr in summary["table"].items():
        for lr, cells in by_lr.items():
            for kind, c in cells.items():
                seed_std = "" if c["seed_std"] is None else f"{c['seed_std']:.4f}"
                print(
                    f"{task:6s} {lr:>7s} {kind:9s} {c['runs']:4d} {100 * c['at_floor']:7.0f}% "
                    f"{c['mean']:7.4f} ± {c['std']:.4f} {seed_std:>8s}"
                )
    for task, best in summary["best_lr"].items():
        print(f"best rate on {task}: " + ", ".join(f"{kind} {lr}" for kind, lr in best.items()))
    print(json.dumps(summary))
    return 0
