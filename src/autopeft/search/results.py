"""Read a search study back: its trials as rows, the Pareto front, the hypervolume over trials."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autopeft.pareto import hypervolume, pareto_indices
from autopeft.search import record as rec
from autopeft.space import PEFTConfig

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class TrialRow:
    """One completed trial of a search study."""

    number: int
    config: PEFTConfig
    metric: float
    params: int
    percent: float
    attrs: dict[str, Any]

    @property
    def retrained(self) -> dict[str, Any] | None:
        """Full-fidelity results stored by `autopeft retrain`, if any."""
        return self.attrs.get("retrain")


def completed_rows(study: optuna.Study) -> list[TrialRow]:
    """The search's results: its completed trials within its parameter budget. A calibration probe's runs,
    which become a `--fidelity auto` search's first trials, are drawn from the whole space and may be
    larger than the search allows: the optimiser still learns from them, but they are not results."""
    from optuna.trial import TrialState

    record = rec.StudyRecord.load(study)
    retrained = record.retrained
    rows = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if record.max_params is not None and trial.values[1] > record.max_params:
            continue
        attrs = dict(trial.user_attrs)
        # finished trials are read-only in Optuna, so follow-up results live in the study's attributes
        if trial.number in retrained:
            attrs["retrain"] = retrained[trial.number]
        rows.append(
            TrialRow(
                number=trial.number,
                config=PEFTConfig.from_dict(attrs[rec.TRIAL_CONFIG]),
                metric=float(trial.values[0]),
                params=int(trial.values[1]),
                percent=float(attrs[rec.TRIAL_PERCENT]),
                attrs=attrs,
            )
        )
    return rows


def pareto_rows(rows: list[TrialRow]) -> list[TrialRow]:
    """Non-dominated rows, cheapest first."""
    return [rows[i] for i in pareto_indices([(r.metric, r.params) for r in rows])]


def study_hypervolume(study: optuna.Study, rows: list[TrialRow]) -> float:
    return hypervolume([(r.metric, r.params) for r in rows], *_refs(study))


def _refs(study: optuna.Study) -> tuple[float, float, float]:
    record = rec.StudyRecord.load(study)
    return record.metric_ref, record.params_ref, record.params_min


def hypervolume_by_trial(study: optuna.Study, rows: list[TrialRow]) -> list[tuple[int, float]]:
    """(trial number, hypervolume of the completed trials up to it), in trial order."""
    ordered = sorted(rows, key=lambda r: r.number)
    refs = _refs(study)
    out = []
    for k, row in enumerate(ordered, start=1):
        points = [(r.metric, r.params) for r in ordered[:k]]
        out.append((row.number, hypervolume(points, *refs)))
    return out


def best_under_budgets(rows: list[TrialRow], percents: tuple[float, ...]) -> list[tuple[float, TrialRow | None]]:
    """The best-scoring row within each parameter budget (percent of the backbone)."""
    out = []
    for budget in percents:
        within = [r for r in rows if r.percent <= budget]
        out.append((budget, max(within, key=lambda r: (r.metric, -r.params)) if within else None))
    return out


def search_cost(study: optuna.Study) -> dict[str, float]:
    """CPU and wall seconds the study's trials took, their suggestions included, summed over every worker
    and session (what the search loop records on each trial; a trial killed while running is not counted)."""
    trials = study.get_trials(deepcopy=False)
    return {key: sum(t.user_attrs.get(key, 0.0) for t in trials) for key in rec.TRIAL_COST_KEYS}


def format_table(rows: list[TrialRow], metric_name: str) -> str:
    """A plain-text table: trial, configuration in words, metric, params, percent."""
    header = ("trial", "configuration", metric_name, "params", "% params")
    body = [(str(r.number), r.config.describe(), f"{r.metric:.4f}", f"{r.params:,}", f"{r.percent:.4f}") for r in rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@dataclass(frozen=True)
class StoppedRow:
    """A trial stopped early: where it stopped, its score there, its size and what it cost."""

    number: int
    share: float  # of its budget, when it stopped
    score: float
    percent: float
    cpu_seconds: float

    @property
    def cpu_seconds_saved(self) -> float:
        """What the rest of its budget would have cost, at the rate it trained."""
        return self.cpu_seconds * (1 / self.share - 1) if self.share > 0 else 0.0


def stopped_rows(study: optuna.Study) -> list[StoppedRow]:
    from optuna.trial import TrialState

    return [
        StoppedRow(
            t.number,
            float(t.user_attrs[rec.TRIAL_EARLY_STOPPED]["share"]),
            float(t.user_attrs[rec.TRIAL_EARLY_STOPPED]["score"]),
            float(t.user_attrs.get(rec.TRIAL_PERCENT, 0.0)),
            float(t.user_attrs.get("cpu_seconds", 0.0)),
        )
        for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        if rec.TRIAL_EARLY_STOPPED in t.user_attrs
    ]


def without_signal(record: rec.StudyRecord, rows: list[TrialRow], z: float = 3.0) -> float | None:
    """The held-out standard error when every complete trial sits within `z` of them of the floor (the
    search saw no signal: its trials are indistinguishable from a constant prediction); else None."""
    from autopeft.search.calibrate import heldout_se

    if record.constant_prediction is None or not record.heldout_size or not rows:
        return None
    se = heldout_se(record.metric, max(r.metric for r in rows), record.heldout_size)
    return se if max(r.metric for r in rows) < record.constant_prediction + z * se else None
