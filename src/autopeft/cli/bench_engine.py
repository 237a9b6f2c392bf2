"""`autopeft bench engine`: parse, call `autopeft.bench.engine`, print the figures side by side."""

from __future__ import annotations

import argparse
import json
import statistics

from autopeft.cli.options import add_device_argument, add_glue_dir_argument, add_model_argument, parse_seeds

HELP = "engine speed and memory against the original Trainer-based trials"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument("--task", required=True, help="GLUE task, e.g. cola or rte")
    add_glue_dir_argument(parser)
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
    add_device_argument(parser)
    parser.add_argument(
        "--precision", default="fp32", help="fp32, bf16 or fp16: autocast for both sides (default fp32)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from autopeft.bench.engine import EngineBench, run_engine_bench
    from autopeft.cli.train import read_config

    bench = EngineBench(
        task=args.task,
        model=args.model,
        glue_dir=args.glue_dir,
        item=read_config(args.config) if args.config else args.method or "pfeiffer",
        train_samples=args.train_samples,
        eval_samples=args.eval_samples,
        epochs=args.epochs,
        seeds=tuple(parse_seeds(args.seeds)),
        trials=args.trials,
        batch_size=args.batch_size,
        lr=args.lr,
        max_length=args.max_length,
        progress=False if args.no_progress else None,
        device=args.device,
        precision=args.precision,
    )
    figures = run_engine_bench(bench, log=lambda line: print(line, flush=True))
    print(
        f"baseline: {figures['baseline_ex_per_s']:7.1f} ex/s, {figures['baseline_s_per_trial']:6.1f} s/trial, "
        f"{_mean_std(figures['baseline_scores'])}"
    )
    print(
        f"engine:   {figures['engine_ex_per_s']:7.1f} ex/s, {figures['engine_s_per_trial']:6.1f} s/trial, "
        f"{_mean_std(figures['engine_scores'])}"
    )
    print(
        f"ratio:    {figures['engine_ex_per_s'] / figures['baseline_ex_per_s']:.2f}x ex/s, "
        f"{figures['baseline_s_per_trial'] / figures['engine_s_per_trial']:.2f}x s/trial"
    )
    growth = figures["rss_growth_percent"]
    verdict = "within" if abs(growth) <= 10 else "NOT within"
    print(
        f"memory:   RSS after engine trial 1 {figures['rss_after_first_mb']:.0f} MB, after trial {figures['trials']} "
        f"{figures['rss_after_last_mb']:.0f} MB ({growth:+.1f}%, {verdict} 10%)"
    )
    gpu = figures["device"].startswith("cuda")
    print(
        f"peak:     engine {figures['engine_peak_memory_mb']:.0f} MB, "
        f"baseline {figures['baseline_peak_memory_mb']:.0f} MB a trial "
        f"({'torch allocation on ' + figures['device'] if gpu else 'RSS'}); "
        f"engine {figures['engine_trials_per_hour']:.0f} trials/hour at {figures['precision']}"
    )
    if figures["device_memory_after_first_mb"] is not None:
        print(
            f"device:   allocated after engine trial 1 {figures['device_memory_after_first_mb']:.0f} MB, "
            f"after trial {figures['trials']} {figures['device_memory_after_last_mb']:.0f} MB"
        )
    print(json.dumps(figures), flush=True)
    return 0


def _mean_std(scores: list[float]) -> str:
    std = statistics.stdev(scores) if len(scores) > 1 else 0.0
    return f"score {statistics.fmean(scores):.4f} ± {std:.4f} ({', '.join(f'{s:.4f}' for s in scores)})"
