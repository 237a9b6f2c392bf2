"""`autopeft retrain`: full-fidelity runs of a study's Pareto configurations, several seeds each."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from autopeft.cli.options import parse_seeds

if TYPE_CHECKING:
    from autopeft.engine import Fidelity
    from autopeft.results import TrialRow

HELP = "retrain Pareto configurations at full fidelity (train on train, report dev) with several seeds"


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage", help="study storage URL (default: $AUTOPEFT_STORAGE or sqlite:///studies/autopeft.db)"
    )
    parser.add_argument("--study", required=True)
    parser.add_argument("--glue-dir", metavar="DIR", help="GLUE folder on this machine (default: the study's)")
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")


def add_final_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--top", type=int, help="the K best-scoring Pareto configurations (default: 3)")
    which.add_argument("--trials", help="these trial numbers, e.g. 3,7")
    parser.add_argument("--seeds", default="40,41,42,43,44", help="comma-separated seeds (default 40..44)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs (default 20, as the paper)")
    parser.add_argument("--patience", type=int, default=10, help="early-stopping patience in epochs (default 10)")
    parser.add_argument("--max-train-samples", type=int, help="cap the training set (default: all of it)")
    parser.add_argument("--max-eval-samples", type=int, help="cap the dev set (default: all of it)")


def final_fidelity(args: argparse.Namespace) -> Fidelity:
    from autopeft.engine import Fidelity

    changes = {"max_train_samples": args.max_train_samples, "max_eval_samples": args.max_eval_samples}
    return Fidelity.paper_final(epochs=args.epochs, patience=args.patience, **{k: v for k, v in changes.items() if v})


def chosen_trials(args: argparse.Namespace) -> list[int] | None:
    from autopeft.errors import UserError

    if not args.trials:
        return None
    try:
        return [int(t) for t in args.trials.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"--trials {args.trials!r} is not a comma-separated list of trial numbers") from None


def final_plan(args: argparse.Namespace) -> tuple[list[int], Fidelity, Any, list[TrialRow]]:
    """The seeds, the fidelity, the study and the chosen trials of a follow-up (`retrain`, `transfer`)."""
    from autopeft.followup import choose_rows
    from autopeft.study import load_study, open_storage

    seeds = parse_seeds(args.seeds)
    fidelity = final_fidelity(args)
    study = load_study(args.study, open_storage(args.storage))
    return seeds, fidelity, study, choose_rows(study, args.top or (None if args.trials else 3), chosen_trials(args))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study_arguments(parser)
    add_final_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from autopeft.cli.search import study_task
    from autopeft.followup import follow_up
    from autopeft.results import retrain_key

    seeds, fidelity, study, rows = final_plan(args)
    follow_up(
        study,
        rows,
        study_task(study, args.glue_dir),
        fidelity,
        seeds,
        device=args.device,
        describe=lambda row: f"{row.config.describe()} ({row.params:,} params)",
        store=lambda row, summary: study.set_user_attr(retrain_key(row.number), summary),
        key="retrained",
    )
    return 0
