"""`report.md`, `pareto.csv`, `pareto.json`, `pareto.png` and `hypervolume.png` for a search study."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autopeft.search import record as rec
from autopeft.search.calibrate import ladder_table
from autopeft.search.results import (
    TrialRow,
    best_under_budgets,
    completed_rows,
    format_table,
    hypervolume_by_trial,
    pareto_rows,
    search_cost,
    stopped_rows,
    study_hypervolume,
    without_signal,
)
from autopeft.space import PEFTConfig

if TYPE_CHECKING:
    import optuna

BUDGETS_PERCENT = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0)


def _retrain_cell(row: TrialRow) -> str:
    retrained = row.retrained
    if not retrained:
        return ""
    return f"{retrained['mean']:.4f} ± {retrained['std']:.4f} (n={len(retrained['scores'])})"


def _row_dict(row: TrialRow) -> dict[str, Any]:
    out = {
        "trial": row.number,
        "configuration": row.config.describe(),
        "config": row.config.to_dict(),
        "metric": row.metric,
        "params": row.params,
        "percent": row.percent,
    }
    if row.retrained:
        out["retrained"] = row.retrained
    return out


def write_report(study: optuna.Study, out_dir: Path) -> dict[str, Path]:
    """Write the report files into `out_dir`; returns them by name. The study and the folder are
    checked before anything is written."""
    from autopeft.paths import check_output_folder

    record = rec.StudyRecord.load(study)
    check_output_folder(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metric = record.metric
    rows = completed_rows(study)
    front = pareto_rows(rows)
    paths = {
        "report": out_dir / "report.md",
        "csv": out_dir / "pareto.csv",
        "json": out_dir / "pareto.json",
        "pareto_png": out_dir / "pareto.png",
        "hypervolume_png": out_dir / "hypervolume.png",
    }

    with paths["csv"].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["trial", "configuration", "config_json", metric, "params", "percent", "retrained_mean", "retrained_std"]
        )
        for r in front:
            re = r.retrained or {}
            writer.writerow(
                [
                    r.number,
                    r.config.describe(),
                    r.config.to_json(),
                    r.metric,
                    r.params,
                    r.percent,
                    re.get("mean", ""),
                    re.get("std", ""),
                ]
            )
    paths["json"].write_text(
        json.dumps(
            {"study": study.study_name, **rec.stored_attrs(study), "pareto": [_row_dict(r) for r in front]}, indent=2
        )
    )
    _plot_pareto(study, record, rows, front, paths["pareto_png"])
    _plot_hypervolume(study, rows, paths["hypervolume_png"])

    failed = [t for t in study.get_trials(deepcopy=False) if t.state.name == "FAIL"]
    over_budget = sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)) - len(rows)
    cost = search_cost(study)
    lines = [
        f"# AutoPEFT search `{study.study_name}`",
        "",
        f"- model: `{record.model}`, task: `{record.task}` ({metric}), space: `{record.space}`",
        f"- sampler: `{record.sampler.name}`, search fidelity: {_fidelity_words(record.fidelity.to_dict())}",
        f"- trials: {len(rows)} complete, {len(failed)} failed; Pareto front: {len(front)} configurations; "
        f"hypervolume {study_hypervolume(study, rows):.4f}"
        + (
            f"; and {over_budget} calibration run(s) larger than the budget, which the optimiser learnt from but"
            " which are not results"
            if over_budget
            else ""
        ),
        f"- cost: {cost['cpu_seconds'] / 3600:.2f} CPU hours, {cost['wall_seconds'] / 3600:.2f} hours of wall time "
        "(suggestions and training, summed over workers)",
    ]
    floor = record.constant_prediction
    if floor is not None:
        lines.append(
            f"- floor: a constant prediction (the training subset's majority class; for regression its mean) scores"
            f" {floor:.4f} on the held-out slice; {sum(r.metric > floor for r in rows)} of {len(rows)} complete trials"
            " score above it (trials at it learnt nothing at this fidelity)"
        )
    se = without_signal(record, rows)
    if se is not None:
        lines.append(
            f"- **no signal**: every complete trial is within 3 standard errors ({se:.4f}) of the floor, so the search"
            " could not tell configurations from a constant prediction at this fidelity; `autopeft calibrate` finds"
            " a fidelity with signal"
        )
    stopped = stopped_rows(study)
    if record.early_stop.on or stopped:
        saved = sum(r.cpu_seconds_saved for r in stopped)
        lines.append(
            f"- early stopping: {'on' if record.early_stop.on else 'off'} (min share {record.early_stop.min_share:g}, "
            f"quantile {record.early_stop.quantile:g}); {len(stopped)} trials stopped early, saving about "
            f"{saved / 3600:.2f} CPU hours (each stopped trial's cost scaled to its whole budget)"
        )
    lines += [
        "",
        "Scores during the search are on a held-out slice of the training set (low fidelity); "
        "retrained scores are full-fidelity runs reported on the dev set.",
        "",
        "## Pareto front",
        "",
        "| trial | configuration | search " + metric + " | params | % params | retrained (dev) |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for r in front:
        cells = [str(r.number), r.config.describe(), f"{r.metric:.4f}", f"{r.params:,}", f"{r.percent:.4f}"]
        lines.append("| " + " | ".join([*cells, _retrain_cell(r)]) + " |")
    lines += [
        "",
        "## Best configuration within a parameter budget",
        "",
        "| budget (% params) | trial | configuration | " + metric + " |",
        "|---:|---:|---|---:|",
    ]
    for budget, row in best_under_budgets(rows, BUDGETS_PERCENT):
        if row is None:
            lines.append(f"| {budget} | | none this small | |")
        else:
            lines.append(f"| {budget} | {row.number} | {row.config.describe()} | {row.metric:.4f} |")
    baselines = record.baselines
    if baselines:
        lines += [
            "",
            "## Manual baselines (same fidelity)",
            "",
            "| method | " + metric + " | params | % params |",
            "|---|---:|---:|---:|",
        ]
        for name, b in baselines.items():
            lines.append(f"| {name} | {b['metric']:.4f} | {b['params']:,} | {b['percent']:.4f} |")
    for task, transfer in record.transfers.items():
        first = next(iter(transfer.values()), {})
        lines += ["", f"## Transferred to {task} (dev, {first.get('metric', '')})", ""]
        lines += ["| trial | configuration | mean ± std | seeds | % params |", "|---:|---|---:|---:|---:|"]
        for number, t in transfer.items():
            config = PEFTConfig.from_dict(t["config"]).describe()
            lines.append(
                f"| {number} | {config} | {t['mean']:.4f} ± {t['std']:.4f} | {len(t['scores'])} | {t['percent']:.4f} |"
            )
    if failed:
        lines += ["", "## Failed trials", ""]
        lines += [f"- trial {t.number}: {t.user_attrs.get(rec.TRIAL_FAIL_REASON, 'error')}" for t in failed]
    if record.calibration is not None:
        lines += [
            "",
            "## Fidelity calibration (`search --fidelity auto`)",
            "",
            "```",
            *ladder_table(record.calibration),
        ]
        lines += ["```"]
    lines += ["", "![Pareto front](pareto.png)", "", "![Hypervolume](hypervolume.png)", ""]
    paths["report"].write_text("\n".join(lines))
    return paths


def _fidelity_words(fidelity: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in fidelity.items()) or "default"


def _plot_pareto(
    study: optuna.Study, record: rec.StudyRecord, rows: list[TrialRow], front: list[TrialRow], path: Path
) -> None:
    from autopeft.plots import percent_axis, save_figure, subplots

    metric = record.metric
    fig, ax = subplots(figsize=(7, 4.5))
    if rows:
        ax.scatter([r.percent for r in rows], [r.metric for r in rows], s=18, color="0.65", label="trials")
        ax.plot([r.percent for r in front], [r.metric for r in front], "-o", color="C0", label="Pareto front")
        for r in front:
            ax.annotate(str(r.number), (r.percent, r.metric), textcoords="offset points", xytext=(4, 4), fontsize=7)
    stopped = stopped_rows(study)
    if stopped:
        ax.scatter([r.percent for r in stopped], [r.score for r in stopped], s=22, marker="x", color="C1",
                   label="stopped early (last score)")  # fmt: skip
    for name, b in record.baselines.items():
        ax.scatter([b["percent"]], [b["metric"]], marker="s", color="C3")
        ax.annotate(
            name, (b["percent"], b["metric"]), textcoords="offset points", xytext=(4, -10), fontsize=7, color="C3"
        )
    floor = record.constant_prediction
    if floor is not None:
        ax.axhline(floor, color="0.5", linestyle="--", linewidth=1, label="constant prediction")
    percent_axis(ax, "trainable PEFT parameters (% of backbone, log scale)")
    ax.set_ylabel(f"{metric} (search fidelity)")
    ax.set_title(f"{study.study_name}: {record.task} on {record.model}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    save_figure(fig, path)


def _plot_hypervolume(study: optuna.Study, rows: list[TrialRow], path: Path) -> None:
    from autopeft.plots import save_figure, subplots

    curve = hypervolume_by_trial(study, rows)
    fig, ax = subplots(figsize=(7, 4))
    if curve:
        ax.step([n for n, _ in curve], [hv for _, hv in curve], where="post", color="C0")
        ax.plot([n for n, _ in curve], [hv for _, hv in curve], "o", color="C0", markersize=3)
    ax.set_xlabel("trial number")
    ax.set_ylabel("hypervolume (metric x normalised log-params)")
    ax.set_title(f"{study.study_name}: hypervolume of completed trials")
    ax.grid(True, alpha=0.3)
    save_figure(fig, path)


def pareto_text(study: optuna.Study) -> str:
    rows = completed_rows(study)
    return format_table(pareto_rows(rows), rec.StudyRecord.load(study).metric)
