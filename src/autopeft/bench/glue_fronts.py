"""The front per task (second edition): dev score against % parameters for each task, and the
hypervolume each search reached against its trial count beside a random search's, where the bench ran one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autopeft.bench.glue_table import AUTOPEFT_TASK, FLOOR_TITLE, FULL, RowResult, task_title

if TYPE_CHECKING:
    import optuna

HV_AT = (10, 20, 30, 40)  # trial counts at which the table reads each search's hypervolume


def front_path(page_path: Path, task: str) -> Path:
    return page_path.with_name(f"{page_path.stem}-{task}.png")


def plot_front(rows: Sequence[RowResult], task: str, path: Path, floor: float | None, metric: str) -> None:
    """One task: its search's retrained configurations (AutoPEFT per task #1..#k) as a line over their
    parameters, the other rows as points, full fine-tuning and the floor as horizontal lines."""
    from autopeft.plots import save_figure, subplots

    fig, ax = subplots(figsize=(7, 4.5))
    ours = sorted(
        (r.cells[task] for r in rows if r.name.split("#")[0] == AUTOPEFT_TASK and task in r.cells),
        key=lambda c: c.percent,
    )
    if ours:
        ax.errorbar(
            [c.percent for c in ours], [100 * c.mean for c in ours], yerr=[100 * c.std for c in ours],
            fmt="*-", color="C3", markersize=11, capsize=3, label="AutoPEFT per task (retrained Pareto configurations)",
        )  # fmt: skip
    for row in rows:
        cell = row.cells.get(task)
        if cell is None or row.name.split("#")[0] == AUTOPEFT_TASK:
            continue
        if row.name == FULL:
            ax.axhline(100 * cell.mean, color="0.3", linewidth=1, label=f"{row.title()} ({cell.percent:.3g} %)")
            continue
        transferred = row.name.startswith("autopeft")
        ax.errorbar(
            [cell.percent], [100 * cell.mean], yerr=[100 * cell.std], fmt="D" if transferred else "o",
            color="C1" if transferred else "C0", markersize=7 if transferred else 6, capsize=3,
        )  # fmt: skip
        ax.annotate(row.title(), (cell.percent, 100 * cell.mean), textcoords="offset points", xytext=(5, 4), fontsize=7)
    if floor is not None:
        ax.axhline(100 * floor, color="0.5", linestyle="--", linewidth=1, label=FLOOR_TITLE.lower())
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (% of the backbone, log scale)")
    ax.set_ylabel(f"dev {metric} (x100, mean over seeds)")
    ax.set_title(task_title(task))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
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
