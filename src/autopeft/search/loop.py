"""The search loop: ask the sampler, train and score through the engine, tell the study.

Several processes may run this loop on one study (PostgreSQL, or SQLite on one machine). The
budget is exact: a trial runs only if fewer than `trials` counted trials precede it by number, so
racing workers never overshoot. Counted trials are the completed ones, the running ones, and
those the engine failed (a NaN loss fails again when retried); trials interrupted by a dead
process do not count, and their configuration is queued again.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autopeft.params import ModelDims, param_count
from autopeft.search import record as rec
from autopeft.search.claim import budget_lock
from autopeft.search.early_stop import EarlyStop, Finished, projected_score, should_stop
from autopeft.search.results import (
    completed_rows,
    format_table,
    hypervolume_by_trial,
    pareto_rows,
    study_hypervolume,
)
from autopeft.search.storage import fail_interrupted_trials, worker_id
from autopeft.space import PEFTConfig, SearchSpace

if TYPE_CHECKING:
    import optuna


IDLE_WAIT_SECONDS = (1.0, 30.0)  # a worker with nothing to claim waits this long first, doubling up to the second


class TrialNotScored(Exception):
    """The engine could not train or score a configuration; the reason is stored on the trial.

    Raised inside Optuna's objective so the trial is stored as FAIL (not the engine's `TrialFailed`,
    which the engine turns into a failed `TrialResult`)."""


def counts_toward_budget(trial: optuna.trial.FrozenTrial) -> bool:
    from optuna.trial import TrialState

    if trial.state in (TrialState.COMPLETE, TrialState.RUNNING):
        return True
    if trial.state == TrialState.PRUNED and rec.TRIAL_EARLY_STOPPED in trial.user_attrs:
        return True  # it trained part of its budget: it counts, as its cost does
    reason = trial.user_attrs.get(rec.TRIAL_FAIL_REASON)
    return trial.state == TrialState.FAIL and reason is not None and not reason.startswith(rec.INTERRUPTED)


def finished_curves(study: optuna.Study) -> list[Finished]:
    """The complete trials with their learning curves, as the early-stopping rule sees them."""
    from optuna.trial import TrialState

    return [
        Finished(int(t.values[1]), float(t.values[0]), [tuple(p) for p in t.user_attrs.get(rec.TRIAL_CURVE, [])])
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ]


def finished_count(study: optuna.Study) -> int:
    """Trials that finished and count toward the budget (complete or failed by the engine)."""
    from optuna.trial import TrialState

    return sum(1 for t in study.get_trials(deepcopy=False) if t.state != TrialState.RUNNING and counts_toward_budget(t))


def _rank(study: optuna.Study, number: int) -> int:
    """How many counted trials come before trial `number`."""
    return sum(1 for t in study.get_trials(deepcopy=False) if t.number < number and counts_toward_budget(t))


@dataclass
class SearchLoop:
    """Runs trials of `study` until `trials` of them are counted; the engine trains each one."""

    study: optuna.Study
    space: SearchSpace
    dims: ModelDims
    run_config: Callable[[PEFTConfig, int, Callable[[Any], bool]], Any]  # (config, number, on_epoch) -> TrialResult
    trials: int
    num_labels: int
    fidelity: dict[str, Any]
    distributions: dict[str, Any]
    config_from_params: Callable[[dict[str, Any]], PEFTConfig]
    early_stop: EarlyStop = field(default_factory=EarlyStop)
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))
    # Process CPU and wall clock when this process's previous trial ended: a trial's cost runs from
    # there, so it includes its suggestion (a NUTS fit can take as long as a short trial).
    _cost_mark: tuple[float, float] = field(default=(0.0, 0.0), init=False, repr=False)

    def objective(self, trial: optuna.Trial) -> tuple[float, float]:
        import optuna

        trial.set_user_attr(rec.TRIAL_WORKER, worker_id())
        if _rank(self.study, trial.number) >= self.trials:
            trial.set_user_attr(rec.TRIAL_SKIPPED, "the budget was reached by other workers")
            raise optuna.TrialPruned()
        params = {name: trial.suggest_categorical(name, d.choices) for name, d in self.distributions.items()}
        config = self.config_from_params(params)
        count = param_count(config, self.dims, self.num_labels)
        trial.set_user_attr(rec.TRIAL_CONFIG, config.to_dict())
        trial.set_user_attr(rec.TRIAL_FIDELITY, self.fidelity)
        for key, value in count.to_dict().items():
            trial.set_user_attr(key, value)
        curve: list[tuple[float, float]] = []
        result = self.run_config(config, trial.number, self._on_epoch(trial, count.peft, curve))
        cpu, wall = time.process_time(), time.perf_counter()
        trial.set_user_attr("cpu_seconds", round(cpu - self._cost_mark[0], 2))
        trial.set_user_attr("wall_seconds", round(wall - self._cost_mark[1], 2))
        self._cost_mark = (cpu, wall)
        outcome = result.to_dict()
        if result.out_dir:
            trial.set_user_attr(rec.TRIAL_ARTIFACT, {"host": worker_id()["host"], "path": result.out_dir})
        for key in rec.TRIAL_RESULT_KEYS:
            if key in outcome:
                trial.set_user_attr(key, outcome[key])
        if result.status != "ok":
            trial.set_user_attr(rec.TRIAL_FAIL_REASON, result.reason or rec.UNKNOWN_FAILURE)
            raise TrialNotScored(result.reason)
        if result.stopped == "callback":  # stopped early: it cannot reach the front at its size
            share, score = curve[-1][0], float(result.metric)
            observed = projected_score(finished_curves(self.study), share, score, self.early_stop.quantile, count.peft)
            trial.set_user_attr(rec.TRIAL_EARLY_STOPPED, {"share": share, "score": score, "observed": observed})
            raise optuna.TrialPruned()
        return float(result.metric), float(count.peft)

    def _on_epoch(self, trial: optuna.Trial, params: int, curve: list[tuple[float, float]]) -> Callable[[Any], bool]:
        """Record each evaluation on the trial (its learning curve) and decide whether to stop it."""

        learning = False  # some evaluation so far gave varied predictions

        def on_epoch(report: Any) -> bool:
            nonlocal learning
            curve.append((report.share, float(report.headline)))
            trial.set_user_attr(rec.TRIAL_CURVE, curve)
            learning = learning or not report.constant
            if not self.early_stop.on:
                return False
            return should_stop(self.early_stop, params, curve, finished_curves(self.study), learning)

        return on_epoch

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        from optuna.trial import TrialState

        done = finished_count(study)
        rows = completed_rows(study)
        front = pareto_rows(rows)
        if trial.state == TrialState.COMPLETE:
            what = f"{self.study.metric_names[0] if self.study.metric_names else 'metric'} {trial.values[0]:.4f}"
            what += f", {int(trial.values[1]):,} params ({trial.user_attrs[rec.TRIAL_PERCENT]:.3f}%)"
        elif trial.state == TrialState.FAIL:
            what = f"failed: {trial.user_attrs.get(rec.TRIAL_FAIL_REASON, 'error')}"
        elif rec.TRIAL_EARLY_STOPPED in trial.user_attrs:
            stopped = trial.user_attrs[rec.TRIAL_EARLY_STOPPED]
            what = f"stopped early at {100 * stopped['share']:.0f}% of its budget (score {stopped['score']:.4f})"
        else:
            what = trial.user_attrs.get(rec.TRIAL_SKIPPED, "skipped")
        config = (
            PEFTConfig.from_dict(trial.user_attrs[rec.TRIAL_CONFIG]).describe()
            if rec.TRIAL_CONFIG in trial.user_attrs
            else ""
        )
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        self.log(
            f"trial {min(done, self.trials)}/{self.trials} (#{trial.number}) {config}: {what} [{seconds:.0f} s] | "
            f"pareto {len(front)}, hypervolume {study_hypervolume(study, rows):.4f}"
        )

    def run(self) -> None:
        """Claim and run trials until `trials` of them have finished in all workers.

        When the rest of the budget is running in other workers, wait (backing off, writing nothing)
        until they finish, or until one of them dies and its trial is to be run again."""
        import optuna

        self._cost_mark = (time.process_time(), time.perf_counter())
        wait = IDLE_WAIT_SECONDS[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # Optuna's heartbeat runs here as in `Study.optimize`, which it warns about outside of it
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            optuna.logging.set_verbosity(optuna.logging.ERROR)
            while True:
                failed = fail_interrupted_trials(self.study)
                if failed:
                    self.log(
                        f"trials {', '.join(map(str, failed))} were interrupted; their configurations are queued again"
                    )
                if finished_count(self.study) >= self.trials:
                    return
                trial = self._claim()
                if trial is None:  # the rest of the budget runs elsewhere
                    time.sleep(wait)
                    wait = min(2 * wait, IDLE_WAIT_SECONDS[1])
                    continue
                wait = IDLE_WAIT_SECONDS[0]
                self._run_one(trial)

    def _claim(self) -> optuna.Trial | None:
        """A new trial of this worker's, or None when every place of the budget is taken."""
        with budget_lock(self.study):
            counted = sum(1 for t in self.study.get_trials(deepcopy=False) if counts_toward_budget(t))
            return self.study.ask() if counted < self.trials else None

    def _run_one(self, trial: optuna.Trial) -> None:
        """The objective with Optuna's heartbeat, then tell (as `Study.optimize` does, one trial)."""
        import optuna
        from optuna.storages._heartbeat import get_heartbeat_thread
        from optuna.trial import TrialState

        values, state, error = None, None, None
        with get_heartbeat_thread(trial._trial_id, self.study._storage):
            try:
                values = self.objective(trial)
            except optuna.TrialPruned:
                state = TrialState.PRUNED
            except TrialNotScored:
                state = TrialState.FAIL
            except (Exception, KeyboardInterrupt) as err:
                state, error = TrialState.FAIL, err
        self.study.tell(trial, values if state is None else None, state=state)
        self.after_trial(self.study, self.study._storage.get_trial(trial._trial_id))
        if error is not None:
            raise error


def summary(study: optuna.Study) -> tuple[str, dict[str, Any]]:
    """The Pareto table and the closing JSON object of a search."""
    from optuna.trial import TrialState

    rows = completed_rows(study)
    front = pareto_rows(rows)
    failed = sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    record = rec.StudyRecord.load(study)
    table = format_table(front, record.metric) if front else "no completed trial yet"
    startup = record.sampler.startup if record.sampler.name.startswith("autopeft") else None
    by_trial = hypervolume_by_trial(study, rows)
    # by trial number, not position, and the start counted on every completed trial: rows leave out the
    # probe's runs over the budget
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    started = [hv for number, hv in by_trial if number < startup] if startup and complete >= startup else []
    after_startup = started[-1] if started else None
    return table, {
        "study": study.study_name,
        "complete": len(rows),
        "failed": failed,
        "stopped_early": sum(1 for t in study.get_trials(deepcopy=False) if rec.TRIAL_EARLY_STOPPED in t.user_attrs),
        "pareto_size": len(front),
        "hypervolume": round(study_hypervolume(study, rows), 6),
        "startup": startup,
        "hypervolume_after_startup": None if after_startup is None else round(after_startup, 6),
        "constant_prediction": record.constant_prediction,
    }
