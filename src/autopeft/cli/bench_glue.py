"""`autopeft bench glue`: parse, call `autopeft.bench.glue`, print (see there for what the bench does)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from autopeft.bench.glue import DEFAULT_METHODS, GLUE_FIDELITY, GLUE_LRS, GLUE_SEARCH_FIDELITY, SearchPlan
from autopeft.cli.options import (
    add_device_argument,
    add_fidelity_arguments,
    add_glue_dir_argument,
    add_model_argument,
    add_storage_argument,
    fidelity_from_args,
    parse_seeds,
)
from autopeft.names import SURROGATES

HELP = "GLUE table: manual PEFT methods, full fine-tuning and AutoPEFT (transferred and per task) -> RESULTS.md"
_PLAN = SearchPlan()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    add_glue_dir_argument(parser)
    parser.add_argument("--tasks", help="comma-separated GLUE tasks (default: every GLUE task in the GLUE folder)")
    parser.add_argument("--methods", help=f"manual rows (default {DEFAULT_METHODS}; --report-only: the stored ones)")
    parser.add_argument("--seeds", help="training seeds of every cell (default 0,1,2; --report-only: the stored ones)")
    add_fidelity_arguments(parser, GLUE_FIDELITY)
    parser.add_argument(
        "--lrs",
        default=GLUE_LRS,
        help=f"learning rate by family or by method (parallel=1e-4), unless the fidelity sets lr (default {GLUE_LRS})",
    )
    parser.add_argument(
        "--rate-grid",
        metavar="FACTORS",
        help="choose each row's rate per task on held-out train among these factors of its --lrs rate (e.g."
        " 0.33,1,3), stepping up to two steps beyond an end of the grid while the best is there",
    )
    search = parser.add_argument_group("AutoPEFT searches")
    search.add_argument(
        "--transfer-from",
        default=_PLAN.transfer_from,
        help="the task whose search is transferred (default rte); auto: the strongest calibrated signal",
    )
    search.add_argument("--search-trials", type=int, default=_PLAN.trials, help="trials per search (default 20)")
    search.add_argument("--search-startup", type=int, default=_PLAN.startup, help="random trials first (default 8)")
    search.add_argument(
        "--search-fidelity",
        default=GLUE_SEARCH_FIDELITY,
        help=f"(default {GLUE_SEARCH_FIDELITY}); auto: each task's calibrated fidelity, no search without signal",
    )
    search.add_argument("--early-stop", action="store_true", help="stop trials that cannot reach the front")
    search.add_argument(
        "--random-searches", action="store_true", help="also a random search of as many trials on each task"
    )
    search.add_argument("--probe-storage", help="the calibration probes of --search-fidelity auto (default --storage)")
    search.add_argument("--sampler", default=_PLAN.sampler, help="search sampler (default autopeft)")
    search.add_argument("--surrogate", choices=SURROGATES, default=_PLAN.surrogate)
    search.add_argument("--max-params", default=_PLAN.max_params, help="search budget, a count or %% (default 1%%)")
    search.add_argument(
        "--top", type=int, default=_PLAN.top, help="Pareto configurations per search to train (default 1)"
    )
    search.add_argument("--no-search", action="store_true", help="manual rows only")
    add_storage_argument(parser)
    parser.add_argument("--name", help="the bench study (default: glue-<model>)")
    parser.add_argument(
        "--jobs", type=int, default=1, help="search trials and final runs at once, in worker processes (default 1)"
    )
    add_device_argument(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("RESULTS.md"),
        help="the results page (default RESULTS.md); RESULTS.notes.md beside it, if there, goes in as its discussion",
    )
    parser.add_argument("--report-only", action="store_true", help="write the results page from stored runs only")


def run(args: argparse.Namespace) -> int:
    from autopeft.bench.glue import (
        DEFAULT_SEEDS,
        GlueBench,
        glue_tasks_in,
        named_methods,
        named_tasks,
        parse_lrs,
        run_glue_bench,
        write_page_only,
    )
    from autopeft.bench.glue_rates import parse_factors
    from autopeft.engine import Fidelity

    if args.report_only:
        write_page_only(
            args.name,
            args.model,
            args.storage,
            args.out,
            glue_dir=args.glue_dir,
            tasks=named_tasks(args.tasks) if args.tasks is not None else None,
            methods=named_methods(args.methods) if args.methods is not None else None,
            seeds=parse_seeds(args.seeds) if args.seeds is not None else None,
        )
        print(f"results: {args.out}")
        return 0
    seeds = tuple(parse_seeds(args.seeds)) if args.seeds is not None else DEFAULT_SEEDS
    fidelity = fidelity_from_args(args, Fidelity.parse(GLUE_FIDELITY))
    lrs = parse_lrs(args.lrs)
    tasks = named_tasks(args.tasks) if args.tasks is not None else glue_tasks_in(args.glue_dir)
    bench = GlueBench(
        model=args.model,
        tasks=tuple(tasks),
        methods=tuple(named_methods(DEFAULT_METHODS if args.methods is None else args.methods)),
        seeds=seeds,
        fidelity=fidelity,
        lrs=lrs,
        search=SearchPlan(
            trials=args.search_trials,
            startup=args.search_startup,
            fidelity=args.search_fidelity,
            sampler=args.sampler,
            surrogate=args.surrogate,
            max_params=args.max_params,
            top=args.top,
            transfer_from=args.transfer_from,
            early_stop=args.early_stop,
            random=args.random_searches,
        ),
        searching=not args.no_search,
        rate_grid=parse_factors(args.rate_grid) if args.rate_grid is not None else None,
        probe_storage=args.probe_storage,
        name=args.name,
        storage=args.storage,
        glue_dir=args.glue_dir,
        jobs=args.jobs,
        device=args.device,
        out=args.out,
    )
    summary = run_glue_bench(bench)
    print(f"results: {args.out}")
    print(json.dumps(summary))
    return 0
