"""`autopeft bench engine`: the same configuration on the same data, the original way and this engine's.

(a) baseline: per trial, the backbone is loaded from disk, every example is padded to 128 tokens
and the Hugging Face Trainer (adapters' AdapterTrainer) trains, as the original AutoPEFT code did
(see `autopeft.engine.baseline`); (b) this engine: the backbone loaded once, data tokenised once,
length-grouped dynamic padding. Both use the same subsets, seeds, optimiser settings and metrics.

For each seed the engine trial runs first, then the baseline trial, so both see the same machine
load. Then the engine runs more trials, up to `--trials`, to show its resident memory stays flat.
Training speed is training examples over training seconds (evaluation, loading and tokenising
excluded on both sides); seconds per trial is everything.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from autopeft.cli.options import parse_seeds
from autopeft.errors import UserError

HELP = "engine speed and memory against the original Trainer-based trials"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default="minilm", help="local model folder, hub id, or minilm/tiny-bert/tiny-roberta"
    )
    parser.add_argument("--task", required=True, help="GLUE task, e.g. cola or rte")
    parser.add_argument("--glue-dir", metavar="DIR", help="GLUE folder in the TSV layout (default: $AUTOPEFT_GLUE_DIR)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--method", default=None, help="baseline method to train (default: pfeiffer)")
    what.add_argument("--config", metavar="FILE", help="configuration JSON file (or inline JSON)")
    parser.add_argument("--train-samples", type=int, default=1000, help="training subset size (default 1000)")
    parser.add_argument("--eval-samples", type=int, default=500, help="dev subset size (default 500)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seeds", default="40,41", help="seeds trained both ways (default 40,41)")
    parser.add_argument(
        "--trials", type=int, default=20, help="engine trials in all, for the memory check (default 20)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, help="learning rate (default: by method family)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from autopeft.cli.train import read_config
    from autopeft.engine import DEFAULT_LRS, Engine, Fidelity, family_of
    from autopeft.engine.baseline import run_baseline_trial
    from autopeft.engine.memory import rss_mb
    from autopeft.tasks import load_task

    seeds = parse_seeds(args.seeds)
    if args.trials < len(seeds):
        raise UserError(f"--trials {args.trials} is fewer than the {len(seeds)} seeds")
    fidelity = Fidelity(
        epochs=args.epochs,
        max_train_samples=args.train_samples,
        max_eval_samples=args.eval_samples,
        batch_size=args.batch_size,
        lr=args.lr,
        max_length=args.max_length,
    )
    task = load_task(args.task, glue_dir=args.glue_dir)
    started = time.perf_counter()
    engine = Engine(args.model, task, progress=False if args.no_progress else None)
    setup_seconds = time.perf_counter() - started
    item = engine.resolve(read_config(args.config) if args.config else args.method or "pfeiffer")
    lr = fidelity.lr or DEFAULT_LRS[family_of(item)]
    plan = fidelity.plan(task, "final")  # the views the engine will train and score on
    label = item.name if not args.config else item.describe()
    print(
        f"bench engine: {task.name}, {args.model}, {label}, {len(plan.train)} train / {len(plan.evals[''])} dev, "
        f"{args.epochs} epoch(s), lr {lr:g}, seeds {args.seeds}; engine setup {setup_seconds:.1f} s",
        flush=True,
    )

    engine_runs: list[Any] = []
    baseline_runs: list[Any] = []
    rss: list[float] = []
    for i in range(args.trials):
        seed = seeds[i] if i < len(seeds) else seeds[-1] + i
        result = engine.run_trial(item, fidelity, seed=seed, mode="final")
        if not result.ok:
            raise UserError(f"engine trial failed: {result.reason}")
        engine_runs.append(result)
        rss.append(rss_mb())
        print(
            f"engine   trial {i + 1:2d} seed {seed}: {task.metric_name} {result.headline:.4f} | "
            f"{result.examples_per_second:6.1f} ex/s | {result.wall_seconds:6.1f} s/trial | RSS {rss[-1]:.0f} MB",
            flush=True,
        )
        if i < len(seeds):
            base = run_baseline_trial(args.model, task, item, fidelity, lr, seed, plan.train, plan.evals[""])
            baseline_runs.append(base)
            print(
                f"baseline trial {i + 1:2d} seed {seed}: {task.metric_name} {base.headline:.4f} | "
                f"{base.examples_per_second:6.1f} ex/s | {base.wall_seconds:6.1f} s/trial "
                f"(load {base.load_seconds:.1f} s)",
                flush=True,
            )

    compared = engine_runs[: len(seeds)]
    engine_speed = sum(r.train_examples * r.epochs_run for r in compared) / sum(r.train_seconds for r in compared)
    baseline_speed = sum(b.train_examples for b in baseline_runs) / sum(b.train_seconds for b in baseline_runs)
    # seconds per trial over the paired trials only: they ran under the same machine load as the baseline's
    engine_trial = statistics.fmean(r.wall_seconds for r in compared)
    baseline_trial = statistics.fmean(b.wall_seconds for b in baseline_runs)
    engine_scores = [r.headline for r in compared]
    baseline_scores = [b.headline for b in baseline_runs]
    growth = 100 * (rss[-1] - rss[0]) / rss[0]
    print(f"baseline: {baseline_speed:7.1f} ex/s, {baseline_trial:6.1f} s/trial, {_mean_std(baseline_scores)}")
    print(f"engine:   {engine_speed:7.1f} ex/s, {engine_trial:6.1f} s/trial, {_mean_std(engine_scores)}")
    print(f"ratio:    {engine_speed / baseline_speed:.2f}x ex/s, {baseline_trial / engine_trial:.2f}x s/trial")
    verdict = "within" if abs(growth) <= 10 else "NOT within"
    print(
        f"memory:   RSS after engine trial 1 {rss[0]:.0f} MB, after trial {len(rss)} {rss[-1]:.0f} MB "
        f"({growth:+.1f}%, {verdict} 10%)"
    )
    print(
        json.dumps(
            {
                "task": task.name,
                "model": args.model,
                "config": engine_runs[0].config,
                "train_examples": len(plan.train),
                "eval_examples": len(plan.evals[""]),
                "epochs": args.epochs,
                "seeds": seeds,
                "metric_name": task.metric_name,
                "baseline_ex_per_s": round(baseline_speed, 2),
                "engine_ex_per_s": round(engine_speed, 2),
                "ratio": round(engine_speed / baseline_speed, 3),
                "baseline_s_per_trial": round(baseline_trial, 2),
                "engine_s_per_trial": round(engine_trial, 2),
                "engine_s_per_trial_all": round(statistics.fmean(r.wall_seconds for r in engine_runs), 2),
                "engine_setup_s": round(setup_seconds, 2),
                "baseline_scores": baseline_scores,
                "engine_scores": engine_scores,
                "baseline_accuracy": [b.metrics.get("accuracy") for b in baseline_runs],
                "engine_accuracy": [r.metrics.get("accuracy") for r in compared],
                "rss_after_first_mb": round(rss[0], 1),
                "rss_after_last_mb": round(rss[-1], 1),
                "rss_growth_percent": round(growth, 2),
                "trials": len(rss),
            }
        ),
        flush=True,
    )
    return 0


def _mean_std(scores: list[float]) -> str:
    std = statistics.stdev(scores) if len(scores) > 1 else 0.0
    return f"score {statistics.fmean(scores):.4f} ± {std:.4f} ({', '.join(f'{s:.4f}' for s in scores)})"
