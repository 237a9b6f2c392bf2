"""`autopeft bench early-stop`: parse, call `autopeft.bench.early_stop`, print the two modes side by side."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from autopeft.cli.options import (
    add_device_argument,
    add_fidelity_arguments,
    add_glue_dir_argument,
    add_model_argument,
    add_storage_argument,
    fidelity_from_args,
    is_auto_fidelity,
    parse_seeds,
)
from autopeft.names import SAMPLERS, SURROGATES
from autopeft.search.early_stop import EarlyStop

HELP = "the same searches with and without early stopping: CPU hours, hypervolume, false stops"
EARLY_STOP_FIDELITY = "epochs=3,max_train_samples=1000,max_eval_samples=400,batch_size=16,lr=1e-3,pooling=mean"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    add_glue_dir_argument(parser)
    parser.add_argument("--tasks", default="stsb,mrpc", help="comma-separated GLUE tasks (default stsb,mrpc)")
    parser.add_argument("--seeds", default="0,1", help="search seeds (default 0,1)")
    parser.add_argument("--trials", type=int, default=30, help="trials per search (default 30)")
    add_fidelity_arguments(parser, EARLY_STOP_FIDELITY + "; auto: each task's calibrated fidelity")
    parser.add_argument("--probe-storage", help="where `autopeft calibrate` stored the probes (default --storage)")
    parser.add_argument("--min-share", type=float, default=EarlyStop.min_share, help="the rule's minimum share")
    parser.add_argument("--quantile", type=float, default=EarlyStop.quantile, help="the rule's quantile")
    parser.add_argument("--sampler", choices=SAMPLERS, default="autopeft")
    parser.add_argument("--surrogate", choices=SURROGATES, default="saas-map")
    parser.add_argument("--startup", type=int, help="random trials first (default: the sampler's)")
    parser.add_argument(
        "--false-stop-sample", type=int, default=5, help="stopped trials finished per search (a seeded random draw)"
    )
    parser.add_argument("--name", default="early-stop", help="prefix of the bench's studies (default early-stop)")
    add_storage_argument(parser)
    parser.add_argument("--jobs", type=int, default=1, help="trials at once (default 1)")
    add_device_argument(parser)
    parser.add_argument("--plot", type=Path, default=Path("docs/figures/early-stop.png"), help="the PNG")


def run(args: argparse.Namespace) -> int:
    from autopeft.bench.early_stop import EarlyStopBench, plot, run_early_stop_bench
    from autopeft.bench.glue import named_tasks
    from autopeft.engine import Fidelity
    from autopeft.search.record import check_study_name

    fidelity = None if is_auto_fidelity(args) else fidelity_from_args(args, Fidelity.parse(EARLY_STOP_FIDELITY))
    bench = EarlyStopBench(
        model=args.model,
        tasks=tuple(named_tasks(args.tasks)),
        seeds=tuple(parse_seeds(args.seeds)),
        trials=args.trials,
        fidelity=fidelity,
        rule=EarlyStop(on=True, min_share=args.min_share, quantile=args.quantile),
        name=check_study_name(args.name, "--name"),
        storage=args.storage,
        probe_storage=args.probe_storage,
        glue_dir=args.glue_dir,
        sampler=args.sampler,
        surrogate=args.surrogate,
        startup=args.startup,
        false_stop_sample=args.false_stop_sample,
        jobs=args.jobs,
        device=args.device,
        plot=args.plot,
    )
    summary = run_early_stop_bench(bench, log=lambda line: print(line, file=sys.stderr, flush=True))
    plot(summary, args.plot)
    print(
        f"{'task':6s} {'CPU h off':>9s} {'CPU h on':>9s} {'share':>6s} {'oracle':>6s} {'HV off':>15s} {'HV on':>15s} "
        f"{'HV off at on CPU':>16s} {'false stops':>12s}"
    )
    for task, row in summary.items():
        if "no_signal" in row:
            print(f"{task:6s} not searched: {row['no_signal']}")
            continue
        off, on = row["off"], row["on"]
        share, oracle = ("n/a" if row[k] is None else f"{100 * row[k]:.0f}%" for k in ("cpu_share", "oracle_share"))
        print(
            f"{task:6s} {off['cpu_hours']:9.3f} {on['cpu_hours']:9.3f} {share:>6s} {oracle:>6s} "
            f"{off['hypervolume']:.4f} ± {off['hypervolume_spread']:.4f} {on['hypervolume']:.4f} ± "
            f"{on['hypervolume_spread']:.4f} {off['hypervolume_at_on_cpu']:16.4f} "
            f"{row['false_stops']:>4d} of {row['checked']:<3d} "
            f"({row['stopped']} stopped)"
        )
    print("HV off at on CPU: the searches without early stopping once they had spent the CPU hours of those with it")
    print("oracle: the CPU share of a rule that knew each trial's final score, stopping at the same checkpoints")
    print(f"plot: {args.plot}")
    print(json.dumps({t: {k: v for k, v in r.items() if k != "curves"} for t, r in summary.items()}))
    return 0
