"""`autopeft transfer`: train a study's Pareto configurations on another task (as the paper, from RTE)."""

from __future__ import annotations

import argparse
from typing import Any

from autopeft.cli.options import add_data_arguments, task_from_args
from autopeft.cli.retrain import add_final_arguments, final_plan

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
    from autopeft.followup import follow_up
    from autopeft.results import TrialRow, transfer_key

    seeds, fidelity, study, rows = final_plan(args)
    task = task_from_args(args)
    results: dict[str, dict[str, Any]] = {}

    def store(row: TrialRow, summary: dict[str, Any]) -> None:
        extra = {"config": row.config.to_dict(), "params": row.params, "percent": row.percent}
        results[str(row.number)] = {**summary, **extra}
        study.set_user_attr(transfer_key(task.name), results)  # every configuration so far, under the task's key

    follow_up(
        study,
        rows,
        task,
        fidelity,
        seeds,
        device=args.device,
        describe=lambda row: f"{row.config.describe()} on {task.name}",
        store=store,
        key="transfer",
    )
    return 0
