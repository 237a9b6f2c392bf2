"""The nine GLUE tasks: where their files are, how their columns are laid out, what they score.

Sources, in order: a GLUE folder in the classic TSV layout (`glue_dir`, else the environment
variable `AUTOPEFT_GLUE_DIR`), then the Hugging Face `datasets` GLUE loader when it is installed
and the hub is reachable. Label ids follow the order of the `datasets` loader, so both sources give
the same ids (and MRPC/QQP's F1 is over class 1, "equivalent"/"duplicate").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from autopeft.names import GLUE_TASKS
from autopeft.tasks.data import Split, TaskData
from autopeft.tasks.reading import DataError, read_text, tsv_rows

GLUE_DIR_ENV = "AUTOPEFT_GLUE_DIR"


class TaskError(DataError):
    """An unknown task or a task whose data cannot be found."""


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task's layout. Columns are header names, or 0-based positions for CoLA (no header)."""

    name: str
    folder: str  # folder under the GLUE directory
    text_columns: tuple[str, ...] | tuple[int, ...]
    label_column: str | int
    labels: tuple[str, ...] | None  # raw label strings by id, in the `datasets` order; None: regression
    metric: str  # metric family, see `autopeft.tasks.metrics`
    hf_text_columns: tuple[str, ...]  # the same texts in the `datasets` loader
    dev_files: tuple[tuple[str, str], ...] = (("", "dev.tsv"),)  # (metric suffix, file); "" is the headline
    hf_dev_splits: tuple[str, ...] = ("validation",)

    @property
    def has_header(self) -> bool:
        return isinstance(self.label_column, str)


PAIR = ("sentence1", "sentence2")
QUESTIONS = ("question1", "question2")
QNLI = ("question", "sentence")
BINARY = ("0", "1")
NLI = ("entailment", "not_entailment")

# CoLA's train/dev files have no header (source, label, original annotation, sentence): columns by position.
# fmt: off
TASKS: dict[str, GlueTask] = {t.name: t for t in (
    #        name    folder   text columns                label           labels  metric              datasets columns
    GlueTask("cola", "CoLA",  (3,),                       1,              BINARY, "matthews",         ("sentence",)),
    GlueTask("sst2", "SST-2", ("sentence",),              "label",        BINARY, "accuracy",         ("sentence",)),
    GlueTask("mrpc", "MRPC",  ("#1 String", "#2 String"), "Quality",      BINARY, "f1_accuracy",      PAIR),
    GlueTask("qqp",  "QQP",   QUESTIONS,                  "is_duplicate", BINARY, "f1_accuracy",      QUESTIONS),
    GlueTask("stsb", "STS-B", PAIR,                       "score",        None,   "pearson_spearman", PAIR),
    GlueTask("mnli", "MNLI",  PAIR,                       "gold_label",   ("entailment", "neutral", "contradiction"),
             "accuracy", ("premise", "hypothesis"),
             dev_files=(("", "dev_matched.tsv"), ("mm", "dev_mismatched.tsv")),
             hf_dev_splits=("validation_matched", "validation_mismatched")),
    GlueTask("qnli", "QNLI",  QNLI,                       "label",        NLI,    "accuracy",         QNLI),
    GlueTask("rte",  "RTE",   PAIR,                       "label",        NLI,    "accuracy",         PAIR),
    GlueTask("wnli", "WNLI",  PAIR,                       "label",        BINARY, "accuracy",         PAIR),
)}
if tuple(TASKS) != GLUE_TASKS:  # the CLI lists these names without importing this module
    raise ImportError(f"GLUE tasks {tuple(TASKS)} do not match autopeft.names.GLUE_TASKS {GLUE_TASKS}")
# fmt: on


def get_task(name: str) -> GlueTask:
    try:
        return TASKS[name.lower()]
    except KeyError:
        raise TaskError(f"unknown task {name!r}; GLUE tasks: {', '.join(TASKS)} (or pass --train-file)") from None


def glue_dir_from_env() -> Path | None:
    value = os.environ.get(GLUE_DIR_ENV)
    return Path(value) if value else None


def load_glue(name: str, glue_dir: str | Path | None = None) -> TaskData:
    """A GLUE task from the TSV folder (`glue_dir`, else $AUTOPEFT_GLUE_DIR), else from `datasets`.

    An explicit `glue_dir` must hold the task; the environment variable is only a first place to look.
    """
    task = get_task(name)
    if glue_dir is not None:
        folder = Path(glue_dir) / task.folder
        if not folder.is_dir():
            raise TaskError(f"GLUE folder {glue_dir} has no {task.folder}/ for task {task.name}")
        return read_glue_folder(task, folder)
    env_dir = glue_dir_from_env()
    if env_dir is not None and (env_dir / task.folder).is_dir():
        return read_glue_folder(task, env_dir / task.folder)
    looked = f"{env_dir / task.folder} (${GLUE_DIR_ENV})" if env_dir else f"no GLUE folder (${GLUE_DIR_ENV} is unset)"
    return load_glue_hf(task, looked)


def read_glue_folder(task: GlueTask, folder: Path) -> TaskData:
    train = _read_glue_file(task, folder / "train.tsv", "train")
    devs = {suffix: _read_glue_file(task, folder / file, Path(file).stem) for suffix, file in task.dev_files}
    dev = devs.pop("")
    return TaskData(task.name, task.metric, task.labels, train, dev, devs, source=f"glue-tsv:{folder}")


def _read_glue_file(task: GlueTask, path: Path, split_name: str) -> Split:
    rows = tsv_rows(read_text(path))
    if task.has_header:
        if not rows:
            raise DataError(f"{path}: the file is empty")
        (_, header), *rows = rows
        missing = [c for c in (*task.text_columns, task.label_column) if c not in header]
        if missing:
            raise DataError(f"{path}: no column {missing[0]!r} for GLUE task {task.name} (header: {', '.join(header)})")
        positions = [header.index(c) for c in task.text_columns]
        label_at = header.index(task.label_column)
    else:
        positions = list(task.text_columns)
        label_at = task.label_column
    if not rows:
        raise DataError(f"{path}: no examples")
    needed = max(*positions, label_at) + 1
    texts: list[list[str]] = [[] for _ in positions]
    labels: list[int] | list[float] = []
    skipped = 0
    label_ids = {label: i for i, label in enumerate(task.labels)} if task.labels else None
    for number, fields in rows:
        if len(fields) < needed:
            skipped += 1  # QQP's train file has a few rows with missing fields; GLUE's own readers skip them
            continue
        raw = fields[label_at].strip()
        if label_ids is None:
            try:
                labels.append(float(raw))
            except ValueError:
                raise DataError(f"{path}, line {number}: score {raw!r} is not a number") from None
        elif raw in label_ids:
            labels.append(label_ids[raw])
        else:
            raise DataError(f"{path}, line {number}: label {raw!r} is not one of {', '.join(task.labels)}")
        for column, at in zip(texts, positions, strict=True):
            column.append(fields[at])
    if not labels:
        raise DataError(f"{path}: no well-formed examples")
    text_b = tuple(texts[1]) if len(texts) > 1 else None
    return Split(split_name, tuple(texts[0]), text_b, tuple(labels), skipped)


def load_glue_hf(task: GlueTask, looked: str) -> TaskData:
    """The task from the Hugging Face `datasets` GLUE loader (needs the package and the hub)."""
    how = (
        f"put the GLUE TSVs in <dir>/{task.folder}/ and pass --glue-dir <dir> or set ${GLUE_DIR_ENV}, "
        "or pass your own --train-file/--dev-file"
    )
    try:
        import datasets
    except ImportError:
        raise TaskError(
            f"GLUE task {task.name}: not found in {looked}, and the Hugging Face 'datasets' library that could "
            f"download it is not installed (pip install datasets); {how}"
        ) from None
    try:
        loaded = datasets.load_dataset("glue", task.name)
    except Exception as err:  # the loader raises many types (connection, hub, file-not-found errors)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TaskError(
            f"GLUE task {task.name}: not found in {looked}, and 'datasets' could not load it ({reason}); {how}"
        ) from None
    train = _hf_split(task, loaded["train"], "train")
    evals = {
        suffix: _hf_split(task, loaded[hf_name], hf_name)
        for (suffix, _), hf_name in zip(task.dev_files, task.hf_dev_splits, strict=True)
    }
    dev = evals.pop("")
    return TaskData(task.name, task.metric, task.labels, train, dev, evals, source="hf-datasets:glue")


def _hf_split(task: GlueTask, table: object, split_name: str) -> Split:
    texts = [tuple(str(t) for t in table[column]) for column in task.hf_text_columns]
    raw = list(table["label"])
    labels = tuple(float(v) for v in raw) if task.labels is None else tuple(int(v) for v in raw)
    return Split(split_name, texts[0], texts[1] if len(texts) > 1 else None, labels)
