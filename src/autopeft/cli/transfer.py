"""`autopeft transfer`: train a study's Pareto configurations on another task (as the paper, from RTE)."""

from __future__ import annotations

import argparse
import json

from autopeft.cli.options import add_data_arguments, parse_seeds, task_from_args
from autopeft.cli.retrain import add_final_arguments, chosen_trials, final_fidelity

HELP = "train a study's Pareto configurations on another task and report mean ± std over seeds"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage", help="study storage URL (default: $AUTOPEFT_STORAGE or sqlite:///studies/autopeft.db)"
    )
    parser.add_argument("--study", required=True)
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    add_data_arguments(parser)
    add_final_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from autopeft.engine import Engine
    from autopeft.followup import choose_rows, run_seeds
    from autopeft.results import transfer_key
    from autopeft.study import load_study, open_storage

    seeds = parse_seeds(args.seeds)
    fidelity = final_fidelity(args)
    study = load_study(args.study, open_storage(args.storage))
    rows = choose_rows(study, args.top or (None if args.trials else 3), chosen_trials(args))
    task = task_from_args(args)
    engine = Engine(study.user_attrs["model"], task, device=args.device)
    results = {}
    for row in rows:
        print(f"trial {row.number}: {row.config.describe()} on {task.name}", flush=True)
        summary = run_seeds(engine, row.config, fidelity, seeds)
        results[str(row.number)] = {
            **summary,
            "config": row.config.to_dict(),
            "params": row.params,
            "percent": row.percent,
        }
        print(f"trial {row.number}: {task.metric_name} {summary['mean']:.4f} ± {summary['std']:.4f}", flush=True)
        study.set_user_attr(transfer_key(task.name), results)  # saved after each configuration
    table = {
        n: {"mean": r["mean"], "std": r["std"], "params": r["params"], "percent": r["percent"]}
        for n, r in results.items()
    }
    print(
        json.dumps({"study": study.study_name, "task": task.name, "metric_name": task.metric_name, "transfer": table})
    )
    return 0
