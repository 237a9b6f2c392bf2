"""The front per task (second edition): dev score against % parameters for each task, and the
hypervolume each search reached against its trial count beside a random search's, where the bench ran one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autopeft.bench.glue_table import AUTOPEFT_TASK, FLOOR_TITLE, FULL, ROW_TITLES, RowResult, task_title

if TYPE_CHECKING:
    import optuna

HV_AT = (10, 20, 30, 40)  # trial counts at which the table reads each search's hypervolume


def front_path(page_path: Path, task: str) -> Path:
    return page_path.with_name(f"{page_path.stem}-{task}.png")


_MARKERS = "osDv^<>ph"
_COLOURS = ("C0", "C2", "C4", "C5", "C6", "C7", "C8", "C9", "navy")  # not C1 / C3: AutoPEFT's


def row_style(name: str) -> dict[str, Any]:
    """Marker and colour of a row, the same on every plot of the page (AutoPEFT rows: stars, red/orange)."""
    base = name.split("#")[0]
    if base == AUTOPEFT_TASK:
        return {"marker": "*", "color": "C3", "markersize": 11}
    if base.startswith("autopeft"):
        return {"marker": "*", "color": "C1", "markersize": 11}
    if base == FULL:
        return {"marker": "s", "color": "0.3", "markersize": 6}
    k = list(ROW_TITLES).index(base) if base in ROW_TITLES else len(ROW_TITLES)
    return {"marker": _MARKERS[k % len(_MARKERS)], "color": _COLOURS[k % len(_COLOURS)], "markersize": 6}


def draw_floor(ax: Any, floor: float | None, low: float, high: float) -> None:
    """Fit the y axis to scores in [low, high] (x100) and draw the constant prediction as a dashed line, or
    only name it in the legend when it lies far below them."""
    from autopeft.plots import score_limits

    if floor is None:
        score_limits(ax, low, high, None)
    elif score_limits(ax, low, high, 100 * floor):
        ax.axhline(100 * floor, color="0.5", linestyle="--", linewidth=1, label=FLOOR_TITLE.lower())
    else:
        label = f"{FLOOR_TITLE.lower()}: {100 * floor:.1f}, below the axis"
        ax.plot([], [], color="0.5", linestyle="--", linewidth=1, label=label)


def plot_front(rows: Sequence[RowResult], task: str, path: Path, floor: float | None, metric: str) -> None:
    """One task: its search's retrained configurations (AutoPEFT per task #1..#k) as a line over their
    parameters, every other row as a point of its own marker, full fine-tuning and the floor as lines."""
    from autopeft.plots import percent_axis, save_figure, subplots

    fig, ax = subplots(figsize=(9, 4.5))
    ours = sorted(
        (r.cells[task] for r in rows if r.name.split("#")[0] == AUTOPEFT_TASK and task in r.cells),
        key=lambda c: c.percent,
    )
    shown = [r.cells[task] for r in rows if task in r.cells]
    if ours:
        label = "AutoPEFT per task (retrained Pareto configurations)"
        ax.errorbar(
            [c.percent for c in ours], [100 * c.mean for c in ours], yerr=[100 * c.std for c in ours],
            fmt="-", capsize=3, label=label, **row_style(AUTOPEFT_TASK),
        )  # fmt: skip
    for row in rows:
        cell = row.cells.get(task)
        if cell is None or row.name.split("#")[0] == AUTOPEFT_TASK:
            continue
        if row.name == FULL:
            ax.axhline(100 * cell.mean, color="0.3", linewidth=1, label=f"{row.title()} ({cell.percent:.3g} %)")
            continue
        ax.errorbar(
            [cell.percent], [100 * cell.mean], yerr=[100 * cell.std],
            linestyle="none", capsize=3, label=f"{row.title()} ({cell.percent:.3g} %)", **row_style(row.name),
        )  # fmt: skip
    draw_floor(ax, floor, min(100 * (c.mean - c.std) for c in shown), max(100 * (c.mean + c.std) for c in shown))
    percent_axis(ax)
    ax.set_ylabel(f"dev {metric} (x100)")
    ax.set_title(f"{task_title(task)}: dev score, mean ± std over seeds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    save_figure(fig, path)


def hv_at(study: optuna.Study, counts: Sequence[int]) -> dict[int, float | None]:
    """Hypervolume of the complete trials among the first `k` counted trials (complete or early-stopped,
    in trial order), for each `k`; None where the study has fewer."""
    from autopeft.pareto import hypervolume
    from autopeft.search import record as rec

    counted = [
        t
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
        if t.state.name == "COMPLETE" or rec.TRIAL_EARLY_STOPPED in t.user_attrs
    ]
    record = rec.StudyRecord.load(study)
    refs = (record.metric_ref, record.params_ref, record.params_min)
    out: dict[int, float | None] = {}
    for k in counts:
        if len(counted) < k:
            out[k] = None
            continue
        points = [(t.values[0], t.values[1]) for t in counted[:k] if t.state.name == "COMPLETE"]
        out[k] = hypervolume(points, *refs)
    return out


def hv_table(searches: Mapping[str, Any], randoms: Mapping[str, Any], trials: int) -> list[str]:
    """Markdown: per task, its search's hypervolume at each count of `HV_AT` up to `trials` (and at `trials`),
    with the random search of the same budget beside it where there is one."""
    counts = sorted({k for k in HV_AT if k < trials} | {trials})
    head = "| Search | " + " | ".join(f"HV at {k}" for k in counts) + " |"
    lines = [head, "|---" + "|---:" * len(counts) + "|"]
    for task, study in searches.items():
        ours = hv_at(study, counts)
        random = hv_at(randoms[task], counts) if task in randoms else None
        cells = []
        for k in counts:
            text = "–" if ours[k] is None else f"{ours[k]:.3f}"
            if random is not None and random[k] is not None:
                text += f" (random {random[k]:.3f})"
            cells.append(text)
        lines.append(f"| {task_title(task)} | " + " | ".join(cells) + " |")
    return lines
