"""The GLUE results table of `autopeft bench glue`: cells, the two claims of the paper, RESULTS.md.

Pure bookkeeping over stored runs (no torch): a run is one (row, task, seed) training at the final
fidelity, with its score on the task's dev set and its PEFT parameter count. Rows are the manual
methods and the AutoPEFT configurations (transferred from one task's search, or searched per task).
Scores are shown x100, as GLUE tables are.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autopeft.floor import at_floor

AUTOPEFT_TRANSFER = "autopeft-transfer"
AUTOPEFT_TASK = "autopeft-task"
FULL = "full"
ROW_TITLES = {
    "full": "Full fine-tuning",
    "bitfit": "BitFit",
    "pfeiffer": "Serial adapter (Pfeiffer)",
    "houlsby": "Houlsby adapter",
    "parallel": "Parallel adapter",
    "prefix": "Prefix-tuning",
    "lora": "LoRA",
    "mam": "MAM adapter",
    "unipelt": "UniPELT",
    AUTOPEFT_TRANSFER: "AutoPEFT, transferred",
    f"{AUTOPEFT_TRANSFER}-rte": "AutoPEFT, transferred from RTE",
    AUTOPEFT_TASK: "AutoPEFT, per task",
}


TASK_TITLES = {
    "cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "qqp": "QQP", "stsb": "STS-B",
    "mnli": "MNLI", "qnli": "QNLI", "rte": "RTE", "wnli": "WNLI",
}  # fmt: skip


def task_title(task: str) -> str:
    return TASK_TITLES.get(task, task)


@dataclass(frozen=True)
class Cell:
    """A row's result on one task over seeds: score mean and sample std (x1), parameters."""

    scores: tuple[float, ...]
    params: int
    percent: float

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores)

    @property
    def std(self) -> float:
        return statistics.stdev(self.scores) if len(self.scores) > 1 else 0.0

    def text(self) -> str:
        return f"{100 * self.mean:.1f} ± {100 * self.std:.1f}"


@dataclass(frozen=True)
class RowResult:
    """One row of the table: its cells by task, and the average over tasks when every task has one."""

    name: str
    cells: dict[str, Cell]
    tasks: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return all(t in self.cells for t in self.tasks)

    @property
    def average(self) -> float | None:
        return statistics.fmean(self.cells[t].mean for t in self.tasks) if self.complete else None

    @property
    def average_std(self) -> float | None:
        """Spread of the task average over seeds: the std of the per-seed averages (seeds paired by position)."""
        return _spread(self, self.tasks) if self.complete else None

    @property
    def percent(self) -> float | None:
        """Mean % of backbone parameters over the tasks it has results on."""
        if not self.cells:
            return None
        return statistics.fmean(c.percent for c in self.cells.values())

    def title(self) -> str:
        base, _, k = self.name.partition("#")
        return ROW_TITLES.get(base, base) + (f" #{k}" if k else "")


def build_rows(
    runs: Mapping[str, Mapping[str, Mapping[int, Mapping[str, Any]]]], tasks: Sequence[str]
) -> list[RowResult]:
    """runs: row -> task -> seed -> {"score", "params", "percent"} -> a `RowResult` per row, in the given order."""
    rows = []
    for name, by_task in runs.items():
        cells = {}
        for task in tasks:
            seeds = by_task.get(task) or {}
            if seeds:
                ordered = [seeds[s] for s in sorted(seeds)]
                cells[task] = Cell(
                    tuple(float(r["score"]) for r in ordered), int(ordered[0]["params"]), float(ordered[0]["percent"])
                )
        rows.append(RowResult(name, cells, tuple(tasks)))
    return rows


@dataclass(frozen=True)
class Verdict:
    """Whether a claim of the paper holds here, and the sentences that say so with the numbers."""

    claim: str
    holds: bool | None  # None: not enough results yet
    text: str


def transfer_claim(rows: Sequence[RowResult]) -> Verdict:
    """Claim 1: configurations found on one task and transferred beat the existing PEFT methods on average.

    The transferred row is the table's (its configuration best on the source's held-out train); its
    runners-up (#2, #3) are shown but not chosen on dev."""
    claim = "AutoPEFT configurations searched on one task and transferred beat existing PEFT methods on the average"
    by_name = {r.name: r for r in rows}
    ours = by_name.get(AUTOPEFT_TRANSFER)
    peft = manual_peft(rows)
    if ours is None or not ours.complete or not peft:
        return Verdict(
            claim, None, "Not enough results yet: this needs every task of a transferred row and of a PEFT method."
        )
    best_peft = max(peft, key=lambda r: r.average)
    margin = 100 * (ours.average - best_peft.average)
    noise = 100 * max(ours.average_std or 0.0, best_peft.average_std or 0.0)
    beaten = [r.title() for r in peft if ours.average > r.average]
    holds = margin > 0
    words = (
        f"{ours.title()} averages {100 * ours.average:.1f} at {ours.percent:.3g} % parameters; "
        f"the best existing PEFT method, {best_peft.title()}, averages {100 * best_peft.average:.1f} at "
        f"{best_peft.percent:.3g} % (difference {margin:+.1f}, seed spread of the averages up to {noise:.1f}). "
        f"It beats {len(beaten)} of {len(peft)} PEFT methods."
    )
    if holds and margin <= noise:
        words += " The lead is within the seed spread, so it is not a clear win."
    if "full" in by_name and by_name["full"].complete:
        words += f" Full fine-tuning averages {100 * by_name['full'].average:.1f}."
    return Verdict(claim, holds, words)


def manual_peft(rows: Sequence[RowResult], complete: bool = True) -> list[RowResult]:
    """The rows of existing PEFT methods (neither full fine-tuning nor AutoPEFT); by default only those
    with a result on every task."""
    return [r for r in rows if r.name != FULL and not r.name.startswith("autopeft") and (r.complete or not complete)]


def at_least(a: Cell, b: Cell) -> bool:
    """`a` scores at least as well as `b`: above it, or below by no more than the larger seed std."""
    return a.mean >= b.mean - max(a.std, b.std)


def per_task_claim(rows: Sequence[RowResult], tasks: Sequence[str], unsearched: Sequence[str] = ()) -> Verdict:
    """Claim 2: a per-task search matches or beats full fine-tuning, on the tasks that were searched
    (`unsearched`: tasks left out because their calibration found no signal)."""
    claim = "AutoPEFT searched per task matches or beats full fine-tuning"
    judged = [t for t in tasks if t not in unsearched]
    by_name = {r.name: r for r in rows}
    full, ours = by_name.get(FULL), by_name.get(AUTOPEFT_TASK)
    if not judged:
        return Verdict(claim, None, "No task was searched: no calibration found signal within its cap.")
    if full is None or ours is None or any(t not in full.cells or t not in ours.cells for t in judged):
        return Verdict(
            claim,
            None,
            "Not enough results yet: this needs full fine-tuning and a per-task AutoPEFT row on every searched task.",
        )
    per_task = []
    wins = 0
    for task in judged:
        a, b = ours.cells[task], full.cells[task]
        wins += at_least(a, b)
        per_task.append(f"{task_title(task)} {100 * a.mean:.1f} vs {100 * b.mean:.1f}")
    ours_avg, full_avg = (statistics.fmean(r.cells[t].mean for t in judged) for r in (ours, full))
    margin = 100 * (ours_avg - full_avg)
    noise = 100 * max(_spread(ours, judged), _spread(full, judged))
    holds = margin >= -noise
    percent = statistics.fmean(ours.cells[t].percent for t in judged)
    over = "" if len(judged) == len(tasks) else f" over the {len(judged)} searched task(s)"
    words = (
        f"{ours.title()} averages {100 * ours_avg:.1f}{over} at {percent:.3g} % parameters against "
        f"{100 * full_avg:.1f} for full fine-tuning (difference {margin:+.1f}, seed spread up to {noise:.1f}); "
        f"per task: {'; '.join(per_task)}. It matches (within one std) or beats full fine-tuning on "
        f"{wins} of {len(judged)} tasks."
    )
    if unsearched:
        words += f" Not searched (no calibrated signal): {', '.join(task_title(t) for t in unsearched)}."
    return Verdict(claim, holds, words)


def aim_verdict(
    rows: Sequence[RowResult], tasks: Sequence[str], floors: Mapping[str, float], unsearched: Sequence[str] = ()
) -> Verdict:
    """The project's aim: on every searched task where some row learns (its mean minus its seed std above
    the constant prediction), the per-task configuration scores at least as well as the best manual PEFT
    method there (within their seed stds) with no more parameters than it."""
    claim = (
        "AutoPEFT per task at least matches the best manual PEFT method at no more parameters, where anything learns"
    )
    by_name = {r.name: r for r in rows}
    ours = by_name.get(AUTOPEFT_TASK)
    peft = manual_peft(rows, complete=False)
    learns = [
        t
        for t in tasks
        if t in floors and any(r.cells[t].mean - r.cells[t].std > floors[t] for r in rows if t in r.cells)
    ]
    judged = [t for t in learns if t not in unsearched]
    # a task where rows learn but no search ran is outside the verdict; the page says which, so that
    # "met on all" never hides a task the search could not see
    skipped = [task_title(t) for t in learns if t in unsearched]
    left_out = f" Not searched though some row learns there (no calibrated signal): {', '.join(skipped)}."
    left_out = left_out if skipped else ""
    if not judged:
        return Verdict(claim, None, "No searched task where any row learns above the floor yet." + left_out)
    if ours is None or any(t not in ours.cells or not any(t in r.cells for r in peft) for t in judged):
        return Verdict(claim, None, "Not enough results yet: this needs the per-task row and the manual rows.")
    per_task, met = [], 0
    for task in judged:
        a = ours.cells[task]
        best = max((r for r in peft if task in r.cells), key=lambda r: r.cells[task].mean)
        b = best.cells[task]
        ok = at_least(a, b) and a.percent <= b.percent
        met += ok
        per_task.append(
            f"{task_title(task)} {100 * a.mean:.1f} at {a.percent:.3g} % vs {best.title()} {100 * b.mean:.1f} at"
            f" {b.percent:.3g} %{'' if ok else ' (not met)'}"
        )
    words = f"Met on {met} of {len(judged)} searched task(s) where some row learns: {'; '.join(per_task)}."
    return Verdict(claim, met == len(judged), words + left_out)


def _spread(row: RowResult, tasks: Sequence[str]) -> float:
    """The std over seeds of `row`'s average over `tasks` (seeds paired by position)."""
    n = min(len(row.cells[t].scores) for t in tasks)
    if n < 2:
        return 0.0
    return statistics.stdev(statistics.fmean(row.cells[t].scores[i] for t in tasks) for i in range(n))


def flat_tasks(rows: Sequence[RowResult], tasks: Sequence[str]) -> list[str]:
    """Tasks on which no row stands out: every row's mean is within the largest seed std of every other.

    On such a task the budget did not let any method learn more than the others, so it only adds
    noise to the averages the claims compare.
    """
    flat = []
    for task in tasks:
        cells = [r.cells[task] for r in rows if task in r.cells]
        if len(cells) >= 2 and max(c.mean for c in cells) - min(c.mean for c in cells) <= max(c.std for c in cells):
            flat.append(task)
    return flat


def markdown_table(
    rows: Sequence[RowResult],
    tasks: Sequence[str],
    metric_names: Mapping[str, str],
    floors: Mapping[str, float] | None = None,
    unsearched: Sequence[str] = (),
) -> str:
    """The results table; with `floors` (task -> constant-prediction score) a last row shows them and a
    cell whose every seed scored exactly its task's floor is marked with a dagger (nothing learnt). The
    per-task AutoPEFT rows read "not searched" on the `unsearched` tasks (no calibrated signal), not "–"."""
    floors = floors or {}
    head = ["Method", *(f"{task_title(t)} ({_short(metric_names.get(t, ''))})" for t in tasks), "Avg", "% params"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]

    def cell(row: RowResult, task: str) -> str:
        if task in row.cells:
            return row.cells[task].text() + (" †" if cell_at_floor(row.cells[task], floors.get(task)) else "")
        return "not searched" if task in unsearched and row.name.startswith(AUTOPEFT_TASK) else "–"

    for row in rows:
        cells = [cell(row, t) for t in tasks]
        avg = f"{100 * row.average:.1f} ± {100 * (row.average_std or 0):.1f}" if row.complete else "–"
        percent = f"{row.percent:.3g}" if row.percent is not None else "–"
        lines.append("| " + " | ".join([row.title(), *cells, avg, percent]) + " |")
    average = floor_average(floors, tasks)
    if average is not None:
        values = [f"*{100 * floors[t]:.1f}*" for t in tasks]
        lines.append("| " + " | ".join([f"*{FLOOR_TITLE}*", *values, f"*{100 * average:.1f}*", "0"]) + " |")
    return "\n".join(lines)


FLOOR_TITLE = "Constant prediction (majority class)"


def floor_average(floors: Mapping[str, float], tasks: Sequence[str]) -> float | None:
    """The constant prediction's average over `tasks`, or None unless every task has its floor."""
    return statistics.fmean(floors[t] for t in tasks) if tasks and all(t in floors for t in tasks) else None


def cell_at_floor(cell: Cell, floor: float | None) -> bool:
    """Every seed scored exactly the constant prediction's score: most likely it predicts one class."""
    return floor is not None and all(at_floor(score, floor) for score in cell.scores)


def _short(metric: str) -> str:
    return {
        "accuracy": "acc.",
        "matthews_correlation": "MCC",
        "f1_accuracy_mean": "F1/acc.",
        "pearson_spearman_mean": "P/S corr.",
    }.get(metric, metric)
