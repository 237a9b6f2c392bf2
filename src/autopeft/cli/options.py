"""Command-line options shared by the commands that train: where the data is and how much to train.

Light at import (no torch): `train`, `search` and the benches add these to their parsers and turn
the parsed namespace into a `TaskData` and a `Fidelity` inside `run`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from autopeft.errors import UserError

if TYPE_CHECKING:
    from autopeft.engine.fidelity import Fidelity
    from autopeft.search.record import TaskArgs
    from autopeft.tasks import TaskData

# flag -> Fidelity knob; each flag overrides the same knob in --fidelity
FIDELITY_FLAGS: dict[str, tuple[str, type, str]] = {
    "epochs": ("epochs", int, "passes over the training set"),
    "max_steps": ("max_steps", int, "stop after this many optimiser steps"),
    "max_train_samples": ("max_train_samples", int, "train on a stratified subset of this size"),
    "train_fraction": ("train_fraction", float, "train on this fraction of the training set"),
    "max_eval_samples": ("max_eval_samples", int, "score on a stratified subset of this size"),
    "patience": ("patience", int, "stop after this many evaluations without improvement"),
    "batch_size": ("batch_size", int, "training batch size (default 32)"),
    "lr": ("lr", float, "learning rate (default: by method family, see autopeft.engine.DEFAULT_LRS)"),
    "max_length": ("max_length", int, "tokens per example after truncation (default 128)"),
}


def add_storage_argument(parser: argparse.ArgumentParser | Any) -> None:
    parser.add_argument(
        "--storage", help="study storage URL (default: $AUTOPEFT_STORAGE or sqlite:///studies/autopeft.db)"
    )


def add_model_argument(parser: argparse.ArgumentParser | Any) -> None:
    parser.add_argument(
        "--model", default="minilm", help="local model folder, hub id, or minilm/tiny-bert/tiny-roberta"
    )


def add_device_argument(parser: argparse.ArgumentParser | Any) -> None:
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")


def add_glue_dir_argument(parser: argparse.ArgumentParser | Any, help: str | None = None) -> None:
    parser.add_argument(
        "--glue-dir", metavar="DIR", help=help or "GLUE folder in the TSV layout (default: $AUTOPEFT_GLUE_DIR)"
    )


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    from autopeft.names import GLUE_TASKS as TASKS  # not autopeft.tasks: --help must not load numpy

    group = parser.add_argument_group("data")
    group.add_argument("--task", help=f"GLUE task: {', '.join(TASKS)} (with --train-file: a name for reports)")
    add_glue_dir_argument(group)
    group.add_argument("--train-file", metavar="FILE", help="your training data: .csv, .tsv or .jsonl with a header")
    group.add_argument("--dev-file", metavar="FILE", help="your dev data, same columns as --train-file")
    group.add_argument("--text-columns", metavar="A[,B]", help="one or two text columns of your files")
    group.add_argument("--label-column", default="label", metavar="NAME", help="label column (default: label)")
    group.add_argument(
        "--task-type",
        choices=("auto", "classification", "regression"),
        default="auto",
        help="your labels: classes or scores (default auto: scores when some label is a fraction)",
    )


def task_args_from(args: argparse.Namespace) -> TaskArgs:
    """The data options as typed task arguments (checked)."""
    from autopeft.search.record import TaskArgs

    columns = tuple(c.strip() for c in args.text_columns.split(",")) if args.text_columns else None
    return TaskArgs(
        name=args.task,
        glue_dir=args.glue_dir,
        train_file=args.train_file,
        dev_file=args.dev_file,
        text_columns=columns,
        label_column=args.label_column,
        task_type=args.task_type,
    )


def task_from_args(args: argparse.Namespace) -> TaskData:
    return task_args_from(args).load()


def add_fidelity_arguments(parser: argparse.ArgumentParser, defaults: str) -> None:
    """`--fidelity k=v,...` plus one flag per common knob; `defaults` says what applies when neither is given."""
    group = parser.add_argument_group("training budget (fidelity)")
    example = "epochs=1,max_train_samples=2000"
    group.add_argument(
        "--fidelity", metavar="K=V,...", help=f"any fidelity knobs, e.g. {example} (default: {defaults})"
    )
    for dest, (_, kind, text) in FIDELITY_FLAGS.items():
        group.add_argument(
            f"--{dest.replace('_', '-')}", dest=dest, type=kind, metavar=kind.__name__.upper(), help=text
        )


def fidelity_from_args(args: argparse.Namespace, base: Fidelity) -> Fidelity:
    """`base`, then the knobs of --fidelity, then each explicit flag."""
    from autopeft.engine.fidelity import Fidelity

    fidelity = Fidelity.parse(args.fidelity, base) if args.fidelity else base
    changes = {
        knob: getattr(args, dest) for dest, (knob, _, _) in FIDELITY_FLAGS.items() if getattr(args, dest) is not None
    }
    return fidelity.replace(**changes) if changes else fidelity


def is_auto_fidelity(args: argparse.Namespace) -> bool:
    """Whether `--fidelity auto` was given (calibration chooses); no other fidelity flag may come with it."""
    if args.fidelity != "auto":
        return False
    given = [f"--{d.replace('_', '-')}" for d in FIDELITY_FLAGS if getattr(args, d) is not None]
    if given:
        raise UserError(f"--fidelity auto chooses the fidelity; do not also give {', '.join(given)}")
    return True


def fidelity_knobs(text: str | None) -> dict[str, Any]:
    """The knobs a `--fidelity k=v,...` names, parsed and checked (for commands that inherit the rest)."""
    from autopeft.engine.fidelity import Fidelity

    if text is None:
        return {}
    parsed = Fidelity.parse(text, Fidelity.paper_final())
    names = [item.partition("=")[0].strip() for item in text.split(",") if item.strip()]
    if not names:
        raise UserError("--fidelity names no knob")
    return {name: getattr(parsed, name) for name in names}


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds {text!r} is not a comma-separated list of integers") from None
    if not seeds:
        raise UserError("--seeds is empty")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text!r} repeats a seed")
    if not all(0 <= s < 2**32 for s in seeds):
        raise UserError(f"--seeds {text!r}: every seed must be in [0, 2^32)")
    return seeds
