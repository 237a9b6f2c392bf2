"""The GLUE results table of `autopeft bench glue`: cells, the two claims of the paper, RESULTS.md.

Pure bookkeeping over stored runs (no torch): a run is one (row, task, seed) training at the final
fidelity, with its score on the task's dev set and its PEFT parameter count. Rows are the manual
methods and the AutoPEFT configurations (transferred from one task's search, or searched per task).
Scores are shown x100, as GLUE tables are.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        if not self.complete:
            return None
        n = min(len(self.cells[t].scores) for t in self.tasks)
        if n < 2:
            return 0.0
        per_seed = [statistics.fmean(self.cells[t].scores[i] for t in self.tasks) for i in range(n)]
        return statistics.stdev(per_seed)

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
    """Claim 1: configurations found on one task and transferred beat the existing PEFT methods on average."""
    claim = "AutoPEFT configurations searched on one task and transferred beat existing PEFT methods on the average"
    by_name = {r.name: r for r in rows}
    ours = [r for r in rows if r.name.split("#")[0] == AUTOPEFT_TRANSFER and r.complete]
    peft = [r for r in rows if r.name not in (FULL,) and not r.name.startswith("autopeft") and r.complete]
    if not ours or not peft:
        return Verdict(
            claim, None, "Not enough results yet: this needs every task of a transferred row and of a PEFT method."
        )
    best_ours = max(ours, key=lambda r: r.average)
    best_peft = max(peft, key=lambda r: r.average)
    margin = 100 * (best_ours.average - best_peft.average)
    noise = 100 * max(best_ours.average_std or 0.0, best_peft.average_std or 0.0)
    beaten = [r.title() for r in peft if best_ours.average > r.average]
    holds = margin > 0
    words = (
        f"{best_ours.title()} averages {100 * best_ours.average:.1f} at {best_ours.percent:.3g} % parameters; "
        f"the best existing PEFT method, {best_peft.title()}, averages {100 * best_peft.average:.1f} at "
        f"{best_peft.percent:.3g} % (difference {margin:+.1f}, seed spread of the averages up to {noise:.1f}). "
        f"It beats {len(beaten)} of {len(peft)} PEFT methods."
    )
    if holds and margin <= noise:
        words += " The lead is within the seed spread, so it is not a clear win."
    if "full" in by_name and by_name["full"].complete:
        words += f" Full fine-tuning averages {100 * by_name['full'].average:.1f}."
    return Verdict(claim, holds, words)


def per_task_claim(rows: Sequence[RowResult], tasks: Sequence[str]) -> Verdict:
    """Claim 2: a per-task search matches or beats full fine-tuning."""
    claim = "AutoPEFT searched per task matches or beats full fine-tuning"
    by_name = {r.name: r for r in rows}
    full = by_name.get(FULL)
    ours = [r for r in rows if r.name.split("#")[0] == AUTOPEFT_TASK]
    if full is None or not ours or not full.complete or not any(r.complete for r in ours):
        return Verdict(
            claim,
            None,
            "Not enough results yet: this needs full fine-tuning and a per-task AutoPEFT row on every task.",
        )
    best = max((r for r in ours if r.complete), key=lambda r: r.average)
    per_task = []
    wins = 0
    for task in tasks:
        a, b = best.cells[task], full.cells[task]
        within = abs(a.mean - b.mean) <= max(a.std, b.std)
        wins += a.mean >= b.mean or within
        per_task.append(f"{task_title(task)} {100 * a.mean:.1f} vs {100 * b.mean:.1f}")
    margin = 100 * (best.average - full.average)
    noise = 100 * max(best.average_std or 0.0, full.average_std or 0.0)
    holds = margin >= -noise
    words = (
        f"{best.title()} averages {100 * best.average:.1f} at {best.percent:.3g} % parameters against "
        f"{100 * full.average:.1f} for full fine-tuning (difference {margin:+.1f}, seed spread up to {noise:.1f}); "
        f"per task: {'; '.join(per_task)}. It matches (within one std) or beats full fine-tuning on "
        f"{wins} of {len(tasks)} tasks."
    )
    return Verdict(claim, holds, words)


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
) -> str:
    """The results table; with `floors` (task -> constant-prediction score) a last row shows them and a
    cell whose every seed scored exactly its task's floor is marked with a dagger (nothing learnt)."""
    floors = floors or {}
    head = ["Method", *(f"{task_title(t)} ({_short(metric_names.get(t, ''))})" for t in tasks), "Avg", "% params"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for row in rows:
        cells = [
            (row.cells[t].text() + (" †" if at_floor(row.cells[t], floors.get(t)) else "")) if t in row.cells else "–"
            for t in tasks
        ]
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


def at_floor(cell: Cell, floor: float | None) -> bool:
    """Every seed scored exactly the constant prediction's score: most likely it predicts one class."""
    return floor is not None and all(abs(score - floor) < 1e-9 for score in cell.scores)


def _short(metric: str) -> str:
    return {
        "accuracy": "acc.",
        "matthews_correlation": "MCC",
        "f1_accuracy_mean": "F1/acc.",
        "pearson_spearman_mean": "P/S corr.",
    }.get(metric, metric)


def plot(rows: Sequence[RowResult], path: Path, title: str, floor: float | None = None) -> None:
    """Average score against % parameters (log axis), one point per complete row; `floor`: the constant
    prediction's average, drawn as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        if not row.complete:
            continue
        ours = row.name.startswith("autopeft")
        ax.errorbar(
            [row.percent],
            [100 * row.average],
            yerr=[100 * (row.average_std or 0)],
            fmt="*" if ours else "o",
            markersize=11 if ours else 6,
            color="C3" if ours else ("0.3" if row.name == FULL else "C0"),
            capsize=3,
        )
        ax.annotate(
            row.title(), (row.percent, 100 * row.average), textcoords="offset points", xytext=(5, 4), fontsize=7
        )
    if floor is not None:
        ax.axhline(100 * floor, color="0.5", linestyle="--", linewidth=1, label=FLOOR_TITLE.lower())
        ax.legend(loc="lower right", fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (% of the backbone, log scale)")
    ax.set_ylabel("average dev score (x100, mean over seeds)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@dataclass(frozen=True)
class Page:
    """Everything RESULTS.md says, gathered by the bench from its study."""

    model: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    metric_names: dict[str, str]
    fidelity: dict[str, Any]
    search: dict[str, Any]  # the search settings (trials, startup, fidelity, sampler, ...)
    rows: tuple[RowResult, ...]
    cells_expected: int
    search_costs: dict[str, dict[str, Any]]  # task -> trials, cpu_seconds, wall_seconds, study
    chosen: dict[str, list[str]]  # task -> configuration JSON, best first
    machines: dict[str, str]  # host -> description
    final_cpu_seconds: float
    final_wall_seconds: float
    lrs: dict[str, float]  # row -> learning rate used
    notes: str | None = None  # hand-written discussion, kept across rewrites of the page
    floors: dict[str, float] = field(default_factory=dict)  # task -> dev score of a constant prediction


def write_page(page: Page, path: Path) -> Path:
    """Write RESULTS.md (and its plot beside it, same stem, .png); returns the plot's path."""
    from autopeft.space import PEFTConfig

    path.parent.mkdir(parents=True, exist_ok=True)
    figure = path.with_suffix(".png")
    rows = list(page.rows)
    title = f"{page.model}: average over {', '.join(task_title(t) for t in page.tasks)}"
    plot(rows, figure, title, floor_average(page.floors, page.tasks))
    cells = sum(len(r.cells) for r in rows)
    complete = cells >= page.cells_expected and all(r.complete for r in rows)
    fid = page.fidelity
    lines = [
        f"# GLUE results: AutoPEFT against manual PEFT methods and full fine-tuning ({page.model})",
        "",
        "Written by `autopeft bench glue` from its study; rerun it to continue or refresh this page."
        + ("" if complete else f" **Incomplete: {cells} of {page.cells_expected} cells so far.**"),
        "",
        "## Setup",
        "",
        f"- Model: `{page.model}`. Tasks: {', '.join(task_title(t) for t in page.tasks)} (by default every GLUE"
        f" task in the data folder). Seeds: {', '.join(map(str, page.seeds))}; cells are mean ± sample std over"
        " seeds, x100.",
        f"- The same budget for every row: {fid.get('epochs')} epochs over at most {fid.get('max_train_samples')}"
        f" training examples (stratified subset), batch {fid.get('batch_size')}, length {fid.get('max_length')},"
        f" AdamW with {fid.get('warmup_ratio')} warm-up and linear decay; the best of the per-epoch evaluations on the"
        " whole dev set is reported (as the paper, which reports the best dev epoch); the head reads the"
        f" {'mean of the tokens' if fid.get('pooling') == 'mean' else 'first token'}. Learning rates by method"
        " family, for this short budget (`--lrs`): "
        + ", ".join(f"{_title(r)} {lr:g}" for r, lr in page.lrs.items())
        + ".",
        f"- AutoPEFT searches: {page.search.get('trials')} trials ({page.search.get('startup')} random, then"
        f" {page.search.get('sampler')} with the {page.search.get('surrogate')} surrogate), budget"
        f" {page.search.get('max_params')} of the backbone, at the search fidelity"
        f" {_words(page.search.get('fidelity', {}))}, scored on a held-out 10 % of train (dev is never seen by a"
        f" search). The best {page.search.get('top')} Pareto configuration(s) by search score are trained as above."
        f" *Transferred*: from the search on {task_title(str(page.search.get('transfer_from', '')))}, trained on every"
        " task; *per task*: each task's own search.",
        "",
        "## Results",
        "",
        markdown_table(rows, page.tasks, page.metric_names, page.floors),
        "",
    ]
    if page.floors:
        lines += [
            f"*{FLOOR_TITLE}*: the dev score of predicting the training set's most frequent class for every"
            " example (for STS-B-like regression, its mean score, whose correlation is 0). † marks a cell where"
            " every seed scored exactly that: the run most likely predicts one class and learnt nothing.",
            "",
        ]
    lines += [
        f"![average score against parameters]({figure.name})",
        "",
        "## The paper's claims, here",
        "",
    ]
    for verdict in (transfer_claim(rows), per_task_claim(rows, page.tasks)):
        state = {True: "**holds**", False: "**does not hold**", None: "**not measured yet**"}[verdict.holds]
        lines += [f"- *{verdict.claim}*: {state}. {verdict.text}", ""]
    flat = flat_tasks(rows, page.tasks)
    if flat:
        lines += [
            f"- On {', '.join(task_title(t) for t in flat)} no row stands out (all means within one seed std of"
            " each other): at this budget nothing learns more there than anything else, so these tasks only add"
            " noise to the averages above.",
            "",
        ]
    if page.notes:
        lines += ["## Discussion", "", page.notes.strip(), ""]
    lines += ["## Configurations found", ""]
    for task, configs in page.chosen.items():
        for k, text in enumerate(configs, start=1):
            lines.append(f"- {task_title(task)} #{k}: {PEFTConfig.from_json(text).describe()} (`{text}`)")
    if not page.chosen:
        lines.append("- none yet")
    lines += ["", "## Searches: cost and signal", ""]
    if not page.search_costs:
        lines.append("No search has run in this bench.")
    else:
        lines += [
            "| Search | Trials | CPU hours | Wall hours | Held-out floor | Best trial |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for task, cost in page.search_costs.items():
            floor, best = (cost.get(k) for k in ("floor", "best"))
            lines.append(
                f"| {task_title(task)} (`{cost.get('study')}`) | {cost.get('trials')} |"
                f" {cost['cpu_seconds'] / 3600:.2f} | {cost['wall_seconds'] / 3600:.2f} |"
                f" {'–' if floor is None else f'{100 * floor:.1f}'} | {'–' if best is None else f'{100 * best:.1f}'} |"
            )
        lines += [
            "",
            "Search scores are on each search's held-out slice of train; the floor is what a constant prediction"
            " (the majority class) scores there. A best trial within noise of its floor means that search had no"
            " signal at its fidelity, and its chosen configuration is close to a random pick.",
        ]
    lines += [
        "",
        f"Final runs: {page.final_cpu_seconds / 3600:.2f} CPU hours ({page.final_wall_seconds / 3600:.2f} hours of"
        " trial wall time, summed over runs).",
        "",
        "## Machine",
        "",
        *(f"- `{host}`: {text}" for host, text in page.machines.items()),
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return figure


def _title(name: str) -> str:
    base, _, k = name.partition("#")
    return ROW_TITLES.get(base, base) + (f" #{k}" if k else "")


def _words(fidelity: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in fidelity.items() if v is not None and k in _SHOWN)


_SHOWN = ("epochs", "max_train_samples", "max_eval_samples", "batch_size", "lr", "max_length", "pooling")
