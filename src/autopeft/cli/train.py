"""`autopeft train`: train one configuration (or baseline) on a task for several seeds; mean and std.

By default a final run as in the paper: train on the training set, score on dev, 20 epochs with
early stopping after 10 epochs without improvement. Prints one line per seed and, last, one line
of JSON with task, metric_name, mean, std, params and percent.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from autopeft.cli.options import (
    add_data_arguments,
    add_fidelity_arguments,
    fidelity_from_args,
    parse_seeds,
    task_from_args,
)
from autopeft.errors import UserError

HELP = "train a configuration or baseline on a task over seeds and report the mean and std"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default="minilm", help="local model folder, hub id, or minilm/tiny-bert/tiny-roberta"
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--config", metavar="FILE", help="configuration JSON file (or inline JSON), as `autopeft space`")
    methods = "full, bitfit, pfeiffer, houlsby, parallel, prefix, lora, mam, unipelt"
    what.add_argument("--method", metavar="NAME", help=f"a baseline: {methods}")
    add_data_arguments(parser)
    add_fidelity_arguments(parser, "the paper's final runs: epochs=20,patience=10")
    parser.add_argument(
        "--seeds", default="42", help="comma-separated training seeds (default 42; the paper: 40,...,44)"
    )
    parser.add_argument(
        "--mode",
        choices=("final", "search"),
        default="final",
        help="final: train on train, score on dev (default); search: score on a held-out slice of train",
    )
    parser.add_argument("--out", metavar="DIR", help="write each seed's metrics, configuration and adapters here")
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def read_config(text: str) -> Any:
    """A PEFTConfig from a JSON file, or from inline JSON."""
    from autopeft.space import PEFTConfig

    path = Path(text)
    if path.is_file():
        try:
            return PEFTConfig.from_json(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text") from None
    if text.lstrip().startswith("{"):
        return PEFTConfig.from_json(text)
    raise UserError(f"--config {text}: no such file (give a JSON file or inline JSON)")


def run(args: argparse.Namespace) -> int:
    from autopeft.engine import Engine, Fidelity
    from autopeft.methods import METHODS

    seeds = parse_seeds(args.seeds)
    fidelity = fidelity_from_args(args, Fidelity.paper_final())
    if args.method is not None and args.method not in METHODS:
        raise UserError(f"unknown method {args.method!r}; known: {', '.join(METHODS)}")
    config = read_config(args.config) if args.config is not None else args.method
    task = task_from_args(args)
    engine = Engine(args.model, task, device=args.device, progress=False if args.no_progress else None)
    item = engine.resolve(config)
    count = engine.count(item)
    label = item.name if args.method is not None else item.describe()
    print(
        f"{task.name} ({len(task.train)} train, {len(task.dev) if task.dev else 0} dev) | {args.model} | {label} | "
        f"{count.peft:,} params ({count.percent:.4f}%) | {fidelity.describe()}",
        flush=True,
    )
    results = []
    for seed in seeds:
        out_dir = Path(args.out) / f"seed_{seed}" if args.out else None
        result = engine.run_trial(item, fidelity, seed=seed, mode=args.mode, out_dir=out_dir)
        results.append(result)
        print(_seed_line(result), flush=True)

    ok = [r for r in results if r.ok]
    scores = [r.headline for r in ok]
    summary = {
        "task": task.name,
        "model": args.model,
        "mode": args.mode,
        "config": results[0].config,
        "metric_name": task.metric_name,
        "mean": statistics.fmean(scores) if scores else None,
        "std": statistics.stdev(scores) if len(scores) > 1 else 0.0 if scores else None,
        "n": len(scores),
        "seeds": seeds,
        "scores": {str(r.seed): r.headline for r in results},
        "metrics_mean": _mean_metrics(ok),
        "failed": {str(r.seed): r.reason for r in results if not r.ok},
        "params": count.peft,
        "head_params": count.head,
        "percent": round(count.percent, 6),
        "fidelity": fidelity.to_dict(),
    }
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary), flush=True)
    if not ok:
        print("autopeft train: every seed failed", file=sys.stderr)
        return 1
    return 0


def _seed_line(result: Any) -> str:
    if not result.ok:
        return f"seed {result.seed}: failed: {result.reason}"
    others = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items() if k != result.metric_name)
    return (
        f"seed {result.seed}: {result.metric_name} {result.headline:.4f}"
        + (f" ({others})" if others else "")
        + f" | epochs {result.epochs_run:g}, best {result.best_epoch}, {result.stopped}"
        + f" | {result.train_seconds:.1f} s train, {result.examples_per_second:.1f} ex/s"
        + f", peak {result.peak_memory_mb:.0f} MB"
    )


def _mean_metrics(results: list[Any]) -> dict[str, float]:
    if not results:
        return {}
    keys = [k for k in results[0].metrics if all(k in r.metrics for r in results)]
    return {k: statistics.fmean(r.metrics[k] for r in results) for k in keys}
