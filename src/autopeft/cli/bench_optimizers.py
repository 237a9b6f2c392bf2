"""`autopeft bench optimizers`: hypervolume against trials for every optimiser on a benchmark problem."""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from autopeft.names import SAMPLERS, SPACES, SURROGATES

HELP = "compare the optimisers (hypervolume against trials) on a synthetic problem or a pool of real evaluations"

DEFAULT_SAMPLERS = ",".join(SAMPLERS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--problem",
        required=True,
        help="synthetic-L (L = 6, 12, 24), realistic-L[-b|-c] (L = 12, 24), or pool:PATH.csv (real evaluations)",
    )
    parser.add_argument("--trials", type=int, default=40, metavar="N", help="trials per run (random runs 2N)")
    parser.add_argument("--seeds", type=int, default=5, metavar="S", help="runs per optimiser, seeds 0..S-1")
    parser.add_argument(
        "--samplers",
        default=DEFAULT_SAMPLERS,
        help=f"comma-separated optimisers, autopeft ones optionally NAME:SURROGATE (default {DEFAULT_SAMPLERS})",
    )
    parser.add_argument("--surrogate", choices=SURROGATES, default="saas", help="AutoPEFT's surrogate (default saas)")
    parser.add_argument("--n-startup", type=int, default=10, help="random trials before modelling (default 10)")
    parser.add_argument("--copula", action="store_true", help="AutoPEFT samplers: Gaussian copula of the metric")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--max-params", type=int, help="hard cap on PEFT parameters")
    budget.add_argument("--max-percent", type=float, help="hard cap as a percentage of the backbone")
    parser.add_argument("--model", default="minilm", help="pool problems: the model the pool was evaluated on")
    parser.add_argument("--space", choices=SPACES, default="paper", help="pool problems: the space")
    parser.add_argument(
        "--floor",
        type=float,
        help="pool problems: what learning nothing scores on its task (a constant prediction), told to AutoPEFT",
    )
    parser.add_argument("--nuts-warmup", type=int, default=None, help="NUTS warm-up steps of the saas surrogate")
    parser.add_argument("--nuts-samples", type=int, default=None, help="NUTS samples (every 8th is kept)")
    parser.add_argument("--out", type=Path, help="output folder (default runs/optimizers/PROBLEM)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once in single-thread workers (default 1)")
    parser.add_argument(
        "--warm-from",
        metavar="PROBLEM",
        help="also warm-start each AutoPEFT optimiser from its run on PROBLEM (same seed) and compare with the cold "
        "start at 10, 20 and 40 trials",
    )
    parser.add_argument(
        "--warm-runs",
        type=Path,
        help="with --warm-from: the bench folder of PROBLEM's runs, made there if missing "
        "(default runs/optimizers/PROBLEM)",
    )
    parser.add_argument(
        "--warm-modes",
        default="both",
        help="with --warm-from: comma-separated, of both (enqueue the source's front and model its trials), "
        "enqueue, model (default both)",
    )
    parser.add_argument(
        "--time-at",
        type=int,
        metavar="K",
        help="instead: time suggestions made after K completed random trials (3 each, median reported)",
    )


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from autopeft.bench.optimizers import BenchSettings, Contender, plot, run_all, summarise, time_suggestions
    from autopeft.bench.problems import problem_factory
    from autopeft.errors import UserError
    from autopeft.optim.surrogate import NutsOptions
    from autopeft.paths import check_output_folder

    if args.trials < 1 or args.seeds < 1:
        raise UserError("--trials and --seeds must be at least 1")
    contenders = [Contender.parse(s) for s in args.samplers.split(",") if s.strip()]
    if not contenders:
        raise UserError("--samplers names no optimiser")
    nuts = NutsOptions()
    if args.nuts_warmup is not None:
        nuts = replace(nuts, warmup_steps=args.nuts_warmup)
    if args.nuts_samples is not None:
        nuts = replace(nuts, num_samples=args.nuts_samples)
    settings = BenchSettings(args.surrogate, args.n_startup, args.max_params, args.max_percent, args.copula, nuts)
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}")
    if args.out is not None:
        check_output_folder(args.out)  # before any run
    if args.floor is not None and not math.isfinite(args.floor):
        raise UserError(f"--floor must be a finite number, got {args.floor}")
    make_problem = problem_factory(args.problem, args.model, args.space, args.floor)
    problem = make_problem()
    log = _stderr

    if args.time_at is not None:
        if args.time_at < 2:
            raise UserError("--time-at must be at least 2")
        medians = {}
        for contender in contenders:
            seconds = time_suggestions(problem, contender, args.time_at, 3, settings)
            medians[contender.label] = round(statistics.median(seconds), 3)
            print(
                f"{contender.label:28s} seconds per suggestion after {args.time_at} trials: "
                + ", ".join(f"{s:.2f}" for s in seconds),
                flush=True,
            )
        print(json.dumps({"problem": problem.name, "completed": args.time_at, "suggest_seconds_median": medians}))
        return 0

    out = args.out or Path("runs") / "optimizers" / problem.name.replace(":", "-").replace("/", "-")
    check_output_folder(out)
    if all(c.name != "random" for c in contenders):
        contenders.append(Contender("random"))  # hv_random_2n needs random search
    runs = run_all(problem, contenders, range(args.seeds), args.trials, settings, out, log, args.jobs, make_problem)
    summary = summarise(problem, runs, args.trials)
    plot(problem, summary, args.trials, out / "hv.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    _print_table(summary, args.trials)
    print(f"plot: {out / 'hv.png'}")
    print(json.dumps(summary["json"]))
    if args.warm_from:  # then its own table and last line of JSON
        _warm(args, problem, contenders, runs, settings, out, log)
    return 0


def _default_out(name: str) -> Path:
    return Path("runs") / "optimizers" / name.replace(":", "-").replace("/", "-")


def _warm(args, problem, contenders, runs, settings, out: Path, log) -> None:
    """Warm starts from `--warm-from` against the cold runs just made or loaded; prints a table, writes JSON."""
    from autopeft.bench.optimizers import run_all
    from autopeft.bench.problems import problem_factory
    from autopeft.bench.warm import WARM_MODES, run_warm, warm_summary
    from autopeft.errors import UserError

    modes = [m.strip() for m in args.warm_modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in WARM_MODES]
    if unknown or not modes:
        raise UserError(f"unknown --warm-modes {', '.join(unknown) or '(none)'}; known: {', '.join(WARM_MODES)}")
    ours = [c for c in contenders if c.name.startswith("autopeft")]
    if not ours:
        raise UserError("--warm-from needs an AutoPEFT optimiser in --samplers")
    source = problem_factory(args.warm_from, args.model, args.space)()
    source_dir = args.warm_runs or _default_out(source.name)
    source_runs = run_all(source, ours, range(args.seeds), args.trials, settings, source_dir, log)
    warm = run_warm(problem, source, source_runs, ours, modes, args.trials, settings, out / f"warm-{source.name}", log)
    cold = [r for r in runs if any(r.label == c.label for c in ours)]
    table = warm_summary(problem, cold, warm)
    print(f"warm start from {source.name} (median over {args.seeds} seeds; spread = max - min):")
    for label, row in table.items():
        cells = "  ".join(f"{k} {v}" for k, v in row.items())
        print(f"  {label:36s} {cells}")
    (out / f"warm-{source.name}" / "summary.json").write_text(json.dumps(table, indent=1))
    print(json.dumps({"problem": problem.name, "warm_from": source.name, "warm": table}))


def _print_table(summary: dict, trials: int) -> None:
    figures = summary["json"]
    half = max(1, trials // 2)
    print(
        f"{'optimiser':28s} {'hv@' + str(half):>9s} {'hv@' + str(trials) + ' median':>15s} "
        f"{'mean ± std':>16s} {'s/suggestion':>13s}"
    )
    for label, values in summary["at_n"].items():
        curve = summary["curves"][label]
        print(
            f"{label:28s} {curve['median'][half - 1]:9.4f} {statistics.median(values):15.4f} "
            f"{statistics.fmean(values):8.4f} ± {statistics.pstdev(values):.4f} "
            f"{figures['suggest_seconds_median'][label]:13.3f}"
        )
    if figures["hv_random_2n"] is not None:
        print(f"{'random after ' + str(2 * trials):28s} {'':9s} {figures['hv_random_2n']:15.4f}")
    for line in target_lines(figures["hv"], figures["hv_random_2n"], trials):
        print(line)


def target_lines(hv: dict[str, float], hv_random_2n: float | None, trials: int) -> list[str]:
    """The issue's targets for each AutoPEFT variant: at least every baseline (random, tpe, nsga2, gp) at
    `trials`, at least random at twice as many; then how it stands against the ablations."""
    from autopeft.optim.baselines import ABLATIONS, BASELINES

    def name(label: str) -> str:
        return label.split(":")[0]

    baselines = [label for label in hv if name(label) in BASELINES]
    ablations = [label for label in hv if name(label) in ABLATIONS]
    lines = []
    for label in (label for label in hv if name(label) == "autopeft"):
        beats = bool(baselines) and all(hv[label] >= hv[b] for b in baselines)
        beats_2n = hv_random_2n is not None and hv[label] >= hv_random_2n
        line = (
            f"target {label}: >= every baseline ({', '.join(baselines) or 'none run'}) at {trials}: "
            f"{'yes' if beats else 'no'}; >= random at {2 * trials}: {'yes' if beats_2n else 'no'}"
        )
        if ablations:
            line += "; against ablations: " + ", ".join(f"{a} {hv[label] - hv[a]:+.4f}" for a in ablations)
        lines.append(line)
    return lines


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
