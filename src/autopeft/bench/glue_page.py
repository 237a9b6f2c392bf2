"""RESULTS.md and its plot, from the GLUE bench's table (`glue_table`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autopeft.bench.glue_table import (
    FLOOR_TITLE,
    ROW_TITLES,
    RowResult,
    aim_verdict,
    flat_tasks,
    floor_average,
    markdown_table,
    per_task_claim,
    task_title,
    transfer_claim,
)


def plot(rows: Sequence[RowResult], path: Path, title: str, floor: float | None = None) -> None:
    """Average score against % parameters (log axis), one point per complete row, each in the marker it has
    on the per-task plots; `floor`: the constant prediction's average, drawn as a line."""
    from autopeft.bench.glue_fronts import draw_floor, row_style
    from autopeft.plots import percent_axis, save_figure, subplots

    fig, ax = subplots(figsize=(9, 4.5))
    complete = [row for row in rows if row.complete]
    for row in complete:
        ax.errorbar(
            [row.percent], [100 * row.average], yerr=[100 * (row.average_std or 0)], linestyle="none", capsize=3,
            label=f"{row.title()} ({row.percent:.3g} %)", **row_style(row.name),
        )  # fmt: skip
    if complete:
        low = min(100 * (r.average - (r.average_std or 0)) for r in complete)
        high = max(100 * (r.average + (r.average_std or 0)) for r in complete)
        draw_floor(ax, floor, low, high)
    percent_axis(ax)
    ax.set_ylabel("average dev score (x100, mean ± std over seeds)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    save_figure(fig, path)


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
    rates: tuple[str, ...] = ()  # the learning-rate grid's evidence (markdown lines); empty: rates by family
    no_signal: dict[str, str] = field(default_factory=dict)  # task -> why its search did not run
    transfer: str | None = None  # where the transferred row comes from and why (`--transfer-from auto`)
    fronts: tuple[str, ...] = ()  # tasks with a front plot (second edition)
    hv_lines: tuple[str, ...] = ()  # the searches' hypervolume against trials (markdown)


def write_page(page: Page, path: Path) -> Path:
    """Write RESULTS.md (and its plot beside it, same stem, .png); returns the plot's path."""
    from autopeft.space import PEFTConfig

    path.parent.mkdir(parents=True, exist_ok=True)
    figure = path.with_suffix(".png")
    rows = list(page.rows)
    title = f"{page.model}: average over {', '.join(task_title(t) for t in page.tasks)}"
    plot(rows, figure, title, floor_average(page.floors, page.tasks))
    cells = sum(len(r.cells) for r in rows)
    complete = cells >= page.cells_expected
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
        f" task in the data folder). Seeds: {', '.join(map(str, page.seeds)) or 'none yet'}; cells are mean ± sample"
        " std over seeds, x100.",
        f"- The same budget for every row: {fid.get('epochs')} epoch{'' if fid.get('epochs') == 1 else 's'} over at"
        f" most {fid.get('max_train_samples')}"
        f" training examples (stratified subset), batch {fid.get('batch_size')}, length {fid.get('max_length')},"
        f" AdamW with {fid.get('warmup_ratio')} warm-up and linear decay; the best of the per-epoch evaluations on the"
        " whole dev set is reported (as the paper, which reports the best dev epoch); the head reads the"
        f" {'mean of the tokens' if fid.get('pooling') == 'mean' else 'first token'}. " + _rate_words(page),
        f"- AutoPEFT searches: {page.search.get('trials')} trials ({page.search.get('startup')} random, then"
        f" {page.search.get('sampler')} with the {page.search.get('surrogate')} surrogate), budget"
        f" {page.search.get('max_params')} of the backbone, at {_search_fidelity_words(page.search)},"
        " scored on a held-out 10 % of train (dev is never seen by a search)."
        + _choice_words(page)
        + (
            f" *Transferred*: {page.transfer}; its configuration best on held-out train there, trained on every task"
            if page.transfer
            else f" *Transferred*: from the search on {task_title(str(page.search['transfer_from']))}, trained on"
            " every task"
        )
        + "; *per task*: each task's own search.",
        "",
        "## Results",
        "",
        markdown_table(rows, page.tasks, page.metric_names, page.floors, unsearched=tuple(page.no_signal)),
        "",
    ]
    if page.floors:
        lines += [
            f"*{FLOOR_TITLE}*: the dev score of predicting the training set's most frequent class for every"
            " example (for STS-B-like regression, its mean score, whose correlation is 0). † marks a cell where"
            " every seed scored exactly that: the run most likely predicts one class and learnt nothing.",
            "",
        ]
    lines += [f"![average score against parameters]({figure.name})", ""]
    if page.fronts:
        lines += _fronts(page, rows, path)
    lines += [
        "## The paper's claims, here",
        "",
    ]
    unsearched = tuple(page.no_signal)
    for verdict in (transfer_claim(rows), per_task_claim(rows, page.tasks, unsearched)):
        state = {True: "**holds**", False: "**does not hold**", None: "**not measured yet**"}[verdict.holds]
        lines += [f"- *{verdict.claim}*: {state}. {verdict.text}", ""]
    if page.fronts:  # the second edition also measures the project's own aim
        aim = aim_verdict(rows, page.tasks, page.floors, unsearched)
        state = {True: "**met**", False: "**not met**", None: "**not measured yet**"}[aim.holds]
        lines += [
            f"- The project's aim, *{aim.claim}*: {state}. {aim.text} (Its other half, the transferred row"
            " beating the best manual PEFT method's average, is the first claim above.)",
            "",
        ]
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
    if page.rates:
        lines += ["", "## Learning rates", "", _RATE_RULE, "", *page.rates]
    lines += ["", "## Searches: cost and signal", ""]
    for task, why in page.no_signal.items():
        lines.append(f"- {task_title(task)}: not searched: {why}")
    if page.no_signal:
        lines.append("")
    if not page.search_costs:
        lines.append("No search has run in this bench.")
    else:
        calibrated = any("fidelity" in cost for cost in page.search_costs.values())
        stopping = any("stopped" in cost for cost in page.search_costs.values())
        lines += [
            "| Search | Trials | CPU hours | Wall hours | Held-out floor | Best trial |"
            + (" Stopped early (CPU hours saved) |" if stopping else "")
            + (" Calibrated fidelity |" if calibrated else ""),
            "|---|---:|---:|---:|---:|---:|" + ("---:|" if stopping else "") + ("---|" if calibrated else ""),
        ]
        for task, cost in page.search_costs.items():
            floor, best = (cost.get(k) for k in ("floor", "best"))
            lines.append(
                f"| {task_title(task)} (`{cost.get('study')}`) | {cost.get('trials')} |"
                f" {cost['cpu_seconds'] / 3600:.2f} | {cost['wall_seconds'] / 3600:.2f} |"
                f" {'–' if floor is None else f'{100 * floor:.1f}'} | {'–' if best is None else f'{100 * best:.1f}'} |"
                + (f" {_stopped_words(cost)} |" if stopping else "")
                + (f" `{cost.get('fidelity', '–')}` |" if calibrated else "")
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


def _fronts(page: Page, rows: list[RowResult], path: Path) -> list[str]:
    """The front plot of each task (written beside the page) and the searches' hypervolume table."""
    from autopeft.bench.glue_fronts import front_path, plot_front

    lines = ["## The front per task", ""]
    for task in page.fronts:
        front = front_path(path, task)
        plot_front(rows, task, front, page.floors.get(task), page.metric_names.get(task, "score"))
        lines += [f"![{task_title(task)}: dev score against parameters]({front.name})", ""]
    if page.hv_lines:
        lines += [
            "Hypervolume (score against parameters, as the search sees it on held-out train) against the number"
            " of trials, beside a random search of the same trials where the bench ran one:",
            "",
            *page.hv_lines,
            "",
        ]
    return lines


_RATE_RULE = (
    "One rule for every row, full fine-tuning and the AutoPEFT configurations included: on each task, the row"
    " trains at its family's rate times each factor of the grid, one seed, at the final budget, scored on the"
    " held-out slice of train (never dev); while the best is the largest (smallest) rate tried, one more step of"
    " the grid's ratio that way, at most two; its final runs use the best (bold). Held-out score x100 by rate:"
)


def _rate_words(page: Page) -> str:
    if page.rates:
        return "Learning rates: chosen per row and task on held-out train by one rule (see *Learning rates*)."
    return (
        "Learning rates by method family, for this short budget (`--lrs`): "
        + ", ".join(f"{_title(r)} {lr:g}" for r, lr in page.lrs.items())
        + "."
    )


def _stopped_words(cost: Mapping[str, Any]) -> str:
    if "stopped" not in cost:
        return "–"
    return f"{cost['stopped']} ({cost['cpu_seconds_saved'] / 3600:.2f})"


def _search_fidelity_words(search: Mapping[str, Any]) -> str:
    fidelity = search.get("fidelity", {})
    if fidelity == "auto":
        stop = ", with early stopping" if search.get("early_stop") else ""
        return f"the fidelity `autopeft calibrate` chose for each task (below){stop}"
    return f"the search fidelity {_words(fidelity)}"


def _choice_words(page: Page) -> str:
    top = page.search.get("top")
    if page.rates:
        return (
            f" The best {top} Pareto configuration(s) by search score are trained as above; the table's row is the"
            " one best on held-out train" + _runners_up(top)
        )
    return f" The best {top} Pareto configuration(s) by search score are trained as above."


def _runners_up(top: int | None) -> str:
    if not top or top < 2:
        return "."
    return ", the other follows as #2." if top == 2 else f", the others follow as #2 to #{top}."


def _title(name: str) -> str:
    base, _, k = name.partition("#")
    return ROW_TITLES.get(base, base) + (f" #{k}" if k else "")


def _words(fidelity: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in fidelity.items() if v is not None and k in _SHOWN)


_SHOWN = ("epochs", "max_train_samples", "max_eval_samples", "batch_size", "lr", "max_length", "pooling")
