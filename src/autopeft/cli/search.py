"""`autopeft search` and `autopeft worker`: parse, call `autopeft.search.run`, print.

`search` creates the study (or continues it) and runs trials; `worker` joins an existing study and
reads everything it needs from it, so workers on other machines need only the storage URL and the
study name.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from autopeft.cli.options import (
    add_data_arguments,
    add_device_argument,
    add_fidelity_arguments,
    add_glue_dir_argument,
    add_model_argument,
    add_storage_argument,
    fidelity_from_args,
    is_auto_fidelity,
    task_args_from,
)
from autopeft.errors import UserError
from autopeft.names import SAMPLERS, SPACES, SURROGATES
from autopeft.search.calibrate import NoSignal
from autopeft.search.early_stop import EarlyStop
from autopeft.search.request import SEARCH_FIDELITY

if TYPE_CHECKING:
    from autopeft.search.request import RunOptions
    from autopeft.search.run import SearchOutcome

HELP = "search PEFT configurations: a multi-objective study of task score and trainable parameters"
WORKER_HELP = "join an existing search study (e.g. on PostgreSQL) and run its trials"


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    add_storage_argument(parser)
    add_device_argument(parser)
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="trials at once, in worker processes on this machine that share its cores (default 1)",
    )
    parser.add_argument("--report", type=Path, metavar="DIR", help="write the report here when the search ends")
    parser.add_argument(
        "--artifacts",
        type=Path,
        metavar="DIR",
        help="save each trial's trained adapter under DIR/<study>/trial-<n> (default: studies/artifacts)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    add_data_arguments(parser)
    parser.add_argument("--trials", type=int, required=True, help="trials to finish in this study (in all workers)")
    parser.add_argument("--sampler", choices=SAMPLERS, default="autopeft")
    parser.add_argument("--surrogate", choices=SURROGATES, default="saas", help="AutoPEFT's GP (default: SAAS by NUTS)")
    parser.add_argument("--startup", type=int, help="random trials before the optimiser starts (default: sampler's)")
    parser.add_argument(
        "--ref-point",
        metavar="METRIC,PARAMS",
        help="AutoPEFT's hypervolume reference point, e.g. 0.5,200000 (default: the worst metric observed and "
        "just beyond the largest allowed configuration)",
    )
    parser.add_argument("--copula", action="store_true", help="AutoPEFT: rank-to-normal transform of the metric")
    parser.add_argument("--space", choices=SPACES, default="paper")
    add_fidelity_arguments(parser, SEARCH_FIDELITY + "; auto: the cheapest with signal, by a calibration probe")
    parser.add_argument("--max-params", metavar="P", help="hard budget: a count (50000) or %% of the backbone (0.5%%)")
    parser.add_argument("--study", help="study name (default: <task>-<model>-<space>-<sampler>)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the sampler and of every trial's training")
    parser.add_argument(
        "--baselines",
        metavar="NAMES",
        help="also train these manual methods at the search fidelity for the report, e.g. pfeiffer,lora,full",
    )
    parser.add_argument(
        "--warm-start",
        metavar="STUDY",
        help="start from what a finished search of another task (same model and space, same storage) learnt",
    )
    parser.add_argument(
        "--calibrate-minutes",
        type=float,
        default=30.0,
        metavar="N",
        help="--fidelity auto: time cap of the calibration probe, when no stored probe is reused (default 30)",
    )
    stop = parser.add_argument_group("early stopping (a trial that cannot reach the front at its size stops)")
    stop.add_argument("--early-stop", choices=("on", "off"), default="off", help="(default off)")
    stop.add_argument(
        "--early-stop-min-share",
        type=float,
        default=EarlyStop.min_share,
        metavar="S",
        help=f"never stop before this share of the budget (default {EarlyStop.min_share})",
    )
    stop.add_argument("--early-stop-quantile", type=float, default=EarlyStop.quantile, metavar="Q",
                      help="quantile of finished curves' remaining gains allowed for (default "
                      f"{EarlyStop.quantile})")  # fmt: skip
    _add_run_options(parser)


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", required=True, help="the study to join")
    add_glue_dir_argument(parser, "GLUE folder on this machine (default: the study's)")
    _add_run_options(parser)


def _run_options(args: argparse.Namespace, glue_dir: str | None = None) -> RunOptions:
    from autopeft.search.request import RunOptions

    return RunOptions(
        storage=args.storage,
        device=args.device,
        jobs=args.jobs,
        report=args.report,
        artifacts=args.artifacts,
        glue_dir=glue_dir,
    )


def run(args: argparse.Namespace) -> int:
    from autopeft.engine import Fidelity
    from autopeft.search.record import SamplerSettings
    from autopeft.search.request import SearchRequest, parse_max_params, parse_ref_point
    from autopeft.search.run import run_search

    options = _run_options(args)
    max_params, max_percent = parse_max_params(args.max_params)
    data = task_args_from(args)
    auto = None
    if is_auto_fidelity(args):
        from autopeft.search.calibrate import Calibration

        auto = Calibration.at_default_base(
            args.model,
            data,
            space=args.space,
            max_minutes=args.calibrate_minutes,
            jobs=args.jobs,
            device=args.device,
            storage=args.storage,
        )
        fidelity = auto.base
    else:
        fidelity = fidelity_from_args(args, Fidelity.parse(SEARCH_FIDELITY))
    request = SearchRequest(
        model=args.model,
        data=data,
        trials=args.trials,
        fidelity=fidelity,
        auto_fidelity=auto,
        warm_start=args.warm_start,
        sampler=SamplerSettings(
            name=args.sampler,
            surrogate=args.surrogate,
            startup=args.startup,
            ref_point=parse_ref_point(args.ref_point),
            copula=args.copula,
        ),
        space=args.space,
        max_params=max_params,
        max_percent=max_percent,
        study=args.study,
        seed=args.seed,
        baselines=_names(args.baselines),
        early_stop=EarlyStop(
            on=args.early_stop == "on", min_share=args.early_stop_min_share, quantile=args.early_stop_quantile
        ),
    )
    started = time.perf_counter()
    try:
        return _print(run_search(request, options), started)
    except NoSignal as err:
        print(f"autopeft search: {err}", file=sys.stderr)
        return 1


def run_worker(args: argparse.Namespace) -> int:
    from autopeft.search.run import join_search

    return _print(join_search(args.study, _run_options(args, args.glue_dir)))


def _names(text: str | None) -> tuple[str, ...]:
    names = tuple(n.strip() for n in (text or "").split(",") if n.strip())
    if text is not None and not names:
        raise UserError("--baselines names no method")
    return names


def _print(outcome: SearchOutcome, started: float | None = None) -> int:
    """The front as a table, then one screen of what the search reached, then the closing JSON."""
    summary = outcome.summary
    print(outcome.table)
    trials = f"{summary['complete']} complete, {summary['failed']} failed, {summary['stopped_early']} stopped early"
    print(f"trials: {trials}; Pareto front: {summary['pareto_size']} configurations")
    hv = f"hypervolume: {summary['hypervolume']:.4f} at the end"
    if summary.get("hypervolume_after_startup") is not None:
        hv += f", {summary['hypervolume_after_startup']:.4f} after the random start ({summary['startup']} trials)"
    print(hv)
    if started is not None:
        print(f"elapsed: {time.perf_counter() - started:.0f} s")
    if outcome.report is not None:
        print(f"report: {outcome.report} (with pareto.png and hypervolume.png beside it)")
    print(json.dumps(summary))
    return 0
