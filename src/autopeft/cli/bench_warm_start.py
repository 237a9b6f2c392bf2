"""`autopeft bench warm-start`: parse, call `autopeft.bench.warm_search`, print cold and warm side by side."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from autopeft.cli.options import (
    FIDELITY_FLAGS,
    add_device_argument,
    add_fidelity_arguments,
    add_glue_dir_argument,
    add_model_argument,
    add_storage_argument,
    fidelity_from_args,
    is_auto_fidelity,
    parse_seeds,
)
from autopeft.errors import UserError
from autopeft.names import SAMPLERS, SPACES, SURROGATES

HELP = "searches of a task started cold and warm from another task's search: hypervolume at 10, 20, 40 trials"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    add_glue_dir_argument(parser)
    parser.add_argument("--task", required=True, help="the GLUE task searched")
    parser.add_argument("--source", required=True, help="a finished search of another task (same model, space)")
    parser.add_argument("--source-storage", help="the source study's storage, copied in (default --storage)")
    parser.add_argument("--seeds", default="0,1", help="search seeds, each searched cold and warm (default 0,1)")
    parser.add_argument("--trials", type=int, default=40, help="trials per search (default 40)")
    add_fidelity_arguments(parser, "auto: the task's calibrated fidelity")
    parser.add_argument("--probe-storage", help="where `autopeft calibrate` stored the probes (default --storage)")
    parser.add_argument("--space", choices=SPACES, default="paper")
    parser.add_argument("--sampler", choices=SAMPLERS, default="autopeft")
    parser.add_argument("--surrogate", choices=SURROGATES, default="saas")
    parser.add_argument("--name", default="warm-start", help="prefix of the bench's studies (default warm-start)")
    add_storage_argument(parser)
    parser.add_argument("--jobs", type=int, default=1, help="trials at once (default 1)")
    add_device_argument(parser)
    parser.add_argument("--out", type=Path, required=True, help="folder for summary.json and hv.png")


def run(args: argparse.Namespace) -> int:
    from autopeft.bench.glue import named_tasks
    from autopeft.bench.warm_search import WarmSearchBench, plot, run_warm_search_bench
    from autopeft.engine import Fidelity
    from autopeft.paths import check_output_folder
    from autopeft.search.record import check_study_name
    from autopeft.search.request import SEARCH_FIDELITY, RunOptions

    flags = any(getattr(args, dest) is not None for dest in FIDELITY_FLAGS)
    auto = is_auto_fidelity(args) or (args.fidelity is None and not flags)
    tasks = named_tasks(args.task)
    if len(tasks) != 1:
        raise UserError(f"--task names one task, not {args.task!r}")
    task = tasks[0]
    bench = WarmSearchBench(
        model=args.model,
        task=task,
        source=check_study_name(args.source, "--source"),
        seeds=tuple(parse_seeds(args.seeds)),
        trials=args.trials,
        fidelity=None if auto else fidelity_from_args(args, Fidelity.parse(SEARCH_FIDELITY)),
        name=check_study_name(args.name, "--name"),
        storage=args.storage,
        source_storage=args.source_storage,
        probe_storage=args.probe_storage,
        glue_dir=args.glue_dir,
        space=args.space,
        sampler=args.sampler,
        surrogate=args.surrogate,
        jobs=RunOptions(jobs=args.jobs).jobs,
        device=args.device,
    )
    check_output_folder(args.out, flag="--out")
    summary = run_warm_search_bench(bench, log=lambda line: print(line, file=sys.stderr, flush=True))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if "no_signal" in summary:
        print(f"{task}: not searched: {summary['no_signal']}")
        print(json.dumps(summary))
        return 1
    plot(summary, args.out / "hv.png")
    print(f"{task} warm-started from {bench.source}, seeds {','.join(map(str, bench.seeds))}; median (spread)")
    print(f"{'start':40s} {'hv@10':>15s} {'hv@20':>15s} {'hv@40':>15s} {'reaches cold hv@end':>20s}")
    for label, row in summary["table"].items():
        cells = [f"{row[f'hv@{n}']:.4f} ({row[f'spread@{n}']:.4f})" if f"hv@{n}" in row else "" for n in (10, 20, 40)]
        reach = row.get("reaches_cold_final_at", "")
        print(f"{label:40s} {cells[0]:>15s} {cells[1]:>15s} {cells[2]:>15s} {reach!s:>20s}")
    print(f"CPU hours: cold {summary['cpu_hours']['cold']}, warm {summary['cpu_hours']['warm']}")
    print(f"plot: {args.out / 'hv.png'}")
    print(json.dumps({k: v for k, v in summary.items() if k != "curves"}))
    return 0
