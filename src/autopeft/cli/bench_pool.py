"""`autopeft bench make-pool`: parse, call `autopeft.bench.pool.make_pool`, print its summary."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from autopeft.bench.pool import POOL_FIDELITY
from autopeft.cli.options import (
    add_data_arguments,
    add_device_argument,
    add_fidelity_arguments,
    fidelity_from_args,
    task_args_from,
)
from autopeft.names import SPACES

HELP = "build a pool of real low-fidelity evaluations of random configurations (resumable CSV)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="minilm")
    add_data_arguments(parser)
    add_fidelity_arguments(parser, POOL_FIDELITY)
    parser.add_argument("--space", choices=SPACES, default="paper")
    parser.add_argument("--configs", type=int, default=300, help="distinct random configurations (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the configuration draw and of training")
    parser.add_argument("--noise-configs", type=int, default=8, help="configurations also trained with more seeds")
    parser.add_argument("--noise-seeds", type=int, default=3, help="seeds per noise configuration (default 3)")
    parser.add_argument("--out", type=Path, required=True, help="the pool CSV (created or continued)")
    add_device_argument(parser)
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="trials at once, in worker processes sharing the CPU threads (default 1; on 2 cores, 2 single-thread "
        "workers train about 30%% more examples per second than one with 2 threads)",
    )


def run(args: argparse.Namespace) -> int:
    from autopeft.bench.pool import PoolRequest, make_pool
    from autopeft.engine import Fidelity

    request = PoolRequest(
        model=args.model,
        data=task_args_from(args),
        fidelity=fidelity_from_args(args, Fidelity.parse(POOL_FIDELITY)),
        out=args.out,
        space=args.space,
        configs=args.configs,
        seed=args.seed,
        noise_configs=args.noise_configs,
        noise_seeds=args.noise_seeds,
        jobs=args.jobs,
        device=args.device,
    )
    print(json.dumps(make_pool(request, log=lambda line: print(line, file=sys.stderr, flush=True))))
    return 0
