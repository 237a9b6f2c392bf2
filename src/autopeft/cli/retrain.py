"""`autopeft retrain`: full-fidelity runs of a study's Pareto configurations, several seeds each."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from autopeft.cli.options import (
    add_device_argument,
    add_glue_dir_argument,
    add_storage_argument,
    fidelity_knobs,
    parse_seeds,
)
from autopeft.errors import UserError

if TYPE_CHECKING:
    from autopeft.search.followup import FollowUp

HELP = "retrain Pareto configurations at full fidelity (train on train, report dev) with several seeds"


def add_final_arguments(parser: argparse.ArgumentParser) -> None:
    """Which trials (`--top`/`--trials`), the seeds and the final budget: shared with `transfer`."""
    add_storage_argument(parser)
    parser.add_argument("--study", required=True)
    add_device_argument(parser)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--top", type=int, help="the K best-scoring Pareto configurations (default: 3)")
    which.add_argument("--trials", help="these trial numbers, e.g. 3,7")
    parser.add_argument("--seeds", default="40,41,42,43,44", help="comma-separated seeds (default 40..44)")
    parser.add_argument(
        "--fidelity",
        metavar="K=V,...",
        help="knobs to change, e.g. epochs=5,max_train_samples=1000 (default: the search's regime, e.g. pooling, "
        "batch size and lr, with the paper's final budget: epochs=20,patience=10, all of train and dev)",
    )
    parser.add_argument("--epochs", type=int, help="epochs (default 20, as the paper)")
    parser.add_argument("--patience", type=int, help="early-stopping patience in epochs (default 10)")
    parser.add_argument("--max-train-samples", type=int, help="cap the training set (default: all of it)")
    parser.add_argument("--max-eval-samples", type=int, help="cap the dev set (default: all of it)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_final_arguments(parser)
    add_glue_dir_argument(parser, "GLUE folder on this machine (default: the study's)")


def follow_up_from(args: argparse.Namespace, glue_dir: str | None = None) -> FollowUp:
    from autopeft.search.followup import FollowUp

    knobs = fidelity_knobs(args.fidelity)
    flags = ("epochs", "patience", "max_train_samples", "max_eval_samples")
    knobs.update({k: getattr(args, k) for k in flags if getattr(args, k) is not None})
    return FollowUp(
        study=args.study,
        seeds=tuple(parse_seeds(args.seeds)),
        fidelity=knobs,
        top=args.top,
        trials=_trial_numbers(args.trials),
        storage=args.storage,
        device=args.device,
        glue_dir=glue_dir,
    )


def _trial_numbers(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        numbers = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UserError(f"--trials {text!r} is not a comma-separated list of trial numbers") from None
    if not numbers or min(numbers) < 0:
        raise UserError(f"--trials {text!r} is not a comma-separated list of trial numbers")
    return numbers


def run(args: argparse.Namespace) -> int:
    from autopeft.search.followup import retrain

    print(json.dumps(retrain(follow_up_from(args, args.glue_dir))))
    return 0
