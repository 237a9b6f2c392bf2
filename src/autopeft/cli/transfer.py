"""`autopeft transfer`: train a study's Pareto configurations on another task (as the paper, from RTE)."""

from __future__ import annotations

import argparse
import json

from autopeft.cli.options import add_data_arguments, task_args_from
from autopeft.cli.retrain import add_final_arguments, follow_up_from

HELP = "train a study's Pareto configurations on another task and report mean ± std over seeds"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_final_arguments(parser)
    add_data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from autopeft.search.followup import transfer

    print(json.dumps(transfer(follow_up_from(args), task_args_from(args))))
    return 0
