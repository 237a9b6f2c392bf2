"""The user's own task: CSV, TSV or JSON-lines files with a header, one example per row.

Text columns: `text_columns` (one or two), else the first of the usual pairs/names that the file
has (sentence1+sentence2, premise+hypothesis, question1+question2, question+sentence, sentence,
text), else the file's one or two non-label columns. The label column defaults to `label`.

Task type: "classification" (labels are class names), "regression" (labels are numbers; the head
regresses one score) or "auto": regression when every label is a number and some are not whole,
classification otherwise. Declare regression for integer scores. Classes are the labels seen in
training, in sorted order (numeric order when all are whole numbers); a dev label never seen in
training is an error, because the head could never predict it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autopeft.tasks.data import Split, TaskData
from autopeft.tasks.reading import DataError, read_text, table_rows

TASK_TYPES = ("auto", "classification", "regression")
KNOWN_TEXT_COLUMNS: tuple[tuple[str, ...], ...] = (
    ("sentence1", "sentence2"),
    ("premise", "hypothesis"),
    ("question1", "question2"),
    ("question", "sentence"),
    ("sentence",),
    ("text",),
)


def load_files(
    train_file: str | Path,
    dev_file: str | Path | None = None,
    *,
    text_columns: Sequence[str] | None = None,
    label_column: str = "label",
    task_type: str = "auto",
    name: str | None = None,
) -> TaskData:
    """A task from the user's files (see the module docstring for the rules)."""
    if task_type not in TASK_TYPES:
        raise DataError(f"unknown task type {task_type!r}; known: {', '.join(TASK_TYPES)}")
    if text_columns is not None and not 1 <= len(text_columns) <= 2:
        raise DataError(f"give one or two text columns, got {len(text_columns)}: {', '.join(text_columns)}")
    train_path = Path(train_file)
    columns, train_rows = _rows(train_path)
    texts = tuple(text_columns) if text_columns else _infer_text_columns(train_path, columns, label_column)
    train_texts, train_raw = _columns(train_path, columns, train_rows, texts, label_column)
    dev = None
    if dev_file is not None:
        dev_path = Path(dev_file)
        dev_columns, dev_rows = _rows(dev_path)
        dev = _columns(dev_path, dev_columns, dev_rows, texts, label_column)

    regression = task_type == "regression" or (task_type == "auto" and _looks_like_regression(train_raw))
    if regression:
        label_names = None
        train_labels: tuple[Any, ...] = _scores(train_path, train_raw, label_column)
        dev_labels = _scores(Path(dev_file), dev[1], label_column) if dev else ()
    else:
        label_names = _class_names(train_raw)
        if len(label_names) < 2:
            raise DataError(f"{train_file}: every training label is {label_names[0]!r}; a classifier needs two classes")
        ids = {label: i for i, label in enumerate(label_names)}
        train_labels = tuple(ids[_canonical(v)] for v in train_raw)
        dev_labels = ()
        if dev:
            unseen = sorted({_canonical(v) for v in dev[1]} - set(ids))
            if unseen:
                shown = ", ".join(repr(u) for u in unseen[:5]) + (" ..." if len(unseen) > 5 else "")
                known = ", ".join(label_names)
                raise DataError(f"{dev_file}: dev labels never seen in training: {shown} (training labels: {known})")
            dev_labels = tuple(ids[_canonical(v)] for v in dev[1])

    train = _split("train", train_texts, train_labels)
    dev_split = _split("dev", dev[0], dev_labels) if dev else None
    metric = "pearson_spearman" if regression else "accuracy"
    return TaskData(name or train_path.stem, metric, label_names, train, dev_split, source=f"files:{train_path}")


def _rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    columns, rows = table_rows(path, read_text(path))
    if not rows:
        raise DataError(f"{path}: a header but no examples")
    return columns, rows


def _infer_text_columns(path: Path, columns: list[str], label_column: str) -> tuple[str, ...]:
    for names in KNOWN_TEXT_COLUMNS:
        if all(n in columns for n in names):
            return names
    others = [c for c in columns if c != label_column]
    if 1 <= len(others) <= 2:
        return tuple(others)
    raise DataError(
        f"{path}: cannot tell which columns hold the text; pass --text-columns (columns: {', '.join(columns)})"
    )


def _columns(
    path: Path, columns: list[str], rows: list[tuple[int, dict[str, Any]]], texts: tuple[str, ...], label_column: str
) -> tuple[list[list[str]], list[Any]]:
    missing = [c for c in (*texts, label_column) if c not in columns]
    if missing:
        what = "label column" if missing[0] == label_column else "text column"
        raise DataError(f"{path}: no {what} {missing[0]!r} (columns: {', '.join(columns)})")
    out: list[list[str]] = [[] for _ in texts]
    labels = []
    for number, row in rows:
        for column, name in zip(out, texts, strict=True):
            value = row.get(name)
            if value is None or isinstance(value, dict | list):
                raise DataError(f"{path}, line {number}: column {name!r} is missing or not text")
            column.append(str(value))
        label = row.get(label_column)
        if label is None or (isinstance(label, str) and not label.strip()):
            raise DataError(f"{path}, line {number}: no label in column {label_column!r}")
        labels.append(label)
    return out, labels


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _looks_like_regression(raw: list[Any]) -> bool:
    numbers = [_number(v) for v in raw]
    return all(n is not None for n in numbers) and any(not n.is_integer() for n in numbers)


def _scores(path: Path, raw: list[Any], label_column: str) -> tuple[float, ...]:
    scores = []
    for value in raw:
        number = _number(value)
        if number is None:
            raise DataError(
                f"{path}: label {value!r} in column {label_column!r} is not a number (task type regression)"
            )
        scores.append(number)
    return tuple(scores)


def _canonical(value: Any) -> str:
    """A class label as text; whole numbers written alike ("1", "1.0", 1 -> "1")."""
    number = _number(value)
    if number is not None and number.is_integer():
        return str(int(number))
    return str(value).strip()


def _class_names(raw: list[Any]) -> tuple[str, ...]:
    names = {_canonical(v) for v in raw}
    if all(_number(n) is not None for n in names):
        return tuple(sorted(names, key=float))
    return tuple(sorted(names))


def _split(name: str, texts: list[list[str]], labels: tuple[Any, ...]) -> Split:
    return Split(name, tuple(texts[0]), tuple(texts[1]) if len(texts) > 1 else None, labels)
