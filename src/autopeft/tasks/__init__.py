"""Tasks: the nine GLUE tasks by name or the user's own files, their metrics and the search protocol.

`load_task` is the one entry point; it needs numpy, scipy and scikit-learn but never torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from autopeft.tasks.data import MODES, Plan, Split, TaskData, View, stratified_sample
from autopeft.tasks.files import TASK_TYPES, load_files
from autopeft.tasks.glue import GLUE_DIR_ENV, TASKS, GlueTask, TaskError, get_task, load_glue
from autopeft.tasks.reading import DataError

__all__ = [
    "GLUE_DIR_ENV",
    "MODES",
    "TASKS",
    "TASK_TYPES",
    "DataError",
    "GlueTask",
    "Plan",
    "Split",
    "TaskData",
    "TaskError",
    "View",
    "get_task",
    "load_files",
    "load_glue",
    "load_task",
    "stratified_sample",
]


def load_task(
    name: str | None = None,
    *,
    glue_dir: str | Path | None = None,
    train_file: str | Path | None = None,
    dev_file: str | Path | None = None,
    text_columns: Sequence[str] | None = None,
    label_column: str = "label",
    task_type: str = "auto",
) -> TaskData:
    """A GLUE task by `name`, or the user's files when `train_file` is given (`name` then only labels reports)."""
    if train_file is not None:
        return load_files(
            train_file,
            dev_file,
            text_columns=text_columns,
            label_column=label_column,
            task_type=task_type,
            name=name,
        )
    if dev_file is not None:
        raise DataError("--dev-file needs --train-file")
    if name is None:
        raise TaskError(f"name a GLUE task ({', '.join(TASKS)}) or pass --train-file")
    return load_glue(name, glue_dir)
