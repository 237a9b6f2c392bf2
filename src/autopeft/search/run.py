"""Run a persistent, resumable, shareable search: create or join a study and work on its trials.

`run_search` creates the study (or continues it) from a `SearchRequest`; `join_search` joins an
existing one and reads everything it needs (model, task, space, fidelity, sampler, budget) from its
record, so workers on other machines need only the storage URL and the study name. With
`RunOptions.jobs > 1` the trials run in that many worker processes on this machine.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autopeft.errors import UserError
from autopeft.search import record as rec
from autopeft.search.calibrate import probe_summary
from autopeft.search.early_stop import EARLY_STOP_EVALS, INTERIM_EVAL_FRACTION
from autopeft.search.request import RunOptions, SearchRequest

if TYPE_CHECKING:
    import optuna

    from autopeft.engine.fidelity import Fidelity
    from autopeft.tasks import TaskData


@dataclass(frozen=True)
class SearchOutcome:
    """What a finished search (in this process) has to show: the Pareto table and the closing summary."""

    study: str
    table: str
    summary: dict[str, Any]
    report: Path | None = None


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_search(request: SearchRequest, options: RunOptions | None = None) -> SearchOutcome:
    """Create (or continue) the study `request` describes and run trials until it has `request.trials`."""
    options = options or RunOptions()
    from autopeft import models
    from autopeft.engine.devices import check_device
    from autopeft.optim import Budget
    from autopeft.search.storage import create_or_continue, open_storage
    from autopeft.space import SearchSpace

    check_device(options.device, request.fidelity.precision, options.jobs, request.model)  # before any study
    options.check_folders()
    task = request.data.load()
    name = rec.check_study_name(request.study_name(task.name))
    dims = models.dims_of(request.model)
    space = SearchSpace(dims.num_layers, dims.hidden_size, request.space)
    budget = Budget.of(space, dims, request.max_params, request.max_percent)  # refuses budgets below the smallest
    fidelity, probe = request.fidelity, None
    if request.auto_fidelity is not None:
        from autopeft.search.calibrate import chosen_fidelity

        fidelity, probe = chosen_fidelity(request.auto_fidelity, task.name, _log)
        _log(f"fidelity: {fidelity.describe()} (chosen by calibration)")
        if request.early_stop.on and fidelity.evals_per_epoch == 1:
            # scored only at each epoch's end the rule sees nothing before half the budget (two epochs) or
            # nothing at all (one): score within each epoch too, on a part of the set, which costs little
            fidelity = fidelity.replace(evals_per_epoch=EARLY_STOP_EVALS, interim_eval_fraction=INTERIM_EVAL_FRACTION)
            _log(
                f"early stopping: {EARLY_STOP_EVALS} evaluations per epoch, those within it on "
                f"{INTERIM_EVAL_FRACTION:.0%} of the scoring set"
                f" (evals_per_epoch={EARLY_STOP_EVALS},interim_eval_fraction={INTERIM_EVAL_FRACTION:g})"
            )
    else:
        _warn_without_signal(request, task.name, options.storage)
    record = rec.StudyRecord(
        model=request.model,
        task=task.name,
        space=request.space,
        fidelity=fidelity,
        num_labels=task.num_labels,
        metric=task.metric_name,
        sampler=request.sampler,
        trials=request.trials,
        max_params=budget.max_params,
        seed=request.seed,
        data=request.data,
        params_ref=budget.largest if budget.max_params is None else Budget.of(space, dims).largest,
        params_min=budget.smallest,
        backbone_params=dims.backbone_params,
        constant_prediction=search_floor(task, fidelity),
        early_stop=request.early_stop,
        heldout_size=len(fidelity.plan(task, "search").evals[""]),
        calibration=None if probe is None else probe_summary(probe),
    )
    storage = open_storage(options.storage)
    warm = None
    if request.warm_start is not None:  # checked before the study exists: a refused warm start creates nothing
        from autopeft.optim import warm as warm_start

        warm = warm_start.load_warm_start(rec.check_study_name(request.warm_start), storage, record, space, budget)
    study = create_or_continue(name, storage, record)
    if warm is not None:
        from autopeft.optim import warm as warm_start

        enqueued = warm_start.apply(study, warm, space)
        if enqueued:
            _log(f"warm start from study {request.warm_start!r}: {enqueued} of its Pareto configurations first")
    if probe is not None and all(t.state.name == "WAITING" for t in study.trials):
        # a new study (only a warm start's enqueued configurations, if any, wait in it) takes the probe's runs
        _observe_probe(study, record, probe, space, dims)
    return _run_study(study, task, options, request.baselines)


def _warn_without_signal(request: SearchRequest, task: str, storage: str | None) -> None:
    """One line before the search starts when a stored probe measured this fidelity and found no signal."""
    from autopeft.search.calibrate import Calibration, load_probe, signal_of
    from autopeft.search.storage import open_storage

    probe_name = Calibration(request.model, request.data, request.fidelity, request.space).study_name(task)
    probe = load_probe(open_storage(storage), probe_name)
    if probe is not None and signal_of(probe, request.fidelity.to_dict()) is False:
        _log(f"warning: the probe in study {probe_name!r} found no signal at this fidelity; see `autopeft calibrate`")


def _observe_probe(study: optuna.Study, record: rec.StudyRecord, probe: dict, space: Any, dims: Any) -> None:
    """The probe's runs at the chosen fidelity become the search's first trials (its mean over seeds each)."""
    import optuna

    from autopeft.optim import optuna_distributions, params_from_config
    from autopeft.params import param_count
    from autopeft.search.calibrate import probe_observations
    from autopeft.space import PEFTConfig

    distributions = optuna_distributions(space)
    for config_json, score, _ in probe_observations(probe):
        config = PEFTConfig.from_json(config_json)
        count = param_count(config, dims, record.num_labels)
        attrs = {rec.TRIAL_CONFIG: config.to_dict(), rec.TRIAL_FIDELITY: record.fidelity.to_dict(), "from_probe": True}
        study.add_trial(
            optuna.trial.create_trial(
                params=params_from_config(space, config),
                distributions=distributions,
                values=[score, float(count.peft)],
                user_attrs={**attrs, **count.to_dict()},
            )
        )


def join_search(study_name: str, options: RunOptions | None = None) -> SearchOutcome:
    """Work on an existing study's trials; everything but the storage and the GLUE folder comes from it."""
    options = options or RunOptions()
    from autopeft.engine.devices import check_device
    from autopeft.search.storage import open_study

    check_device(options.device)
    options.check_folders()
    study, record = open_study(study_name, options.storage)
    check_device(options.device, record.fidelity.precision, options.jobs, record.model)
    return _run_study(study, record.data.load(options.glue_dir), options)


def search_floor(task: TaskData, fidelity: Fidelity) -> float | None:
    """What a constant prediction scores on the search's held-out slice (`TaskData.constant_prediction_scores`):
    trials near it learnt nothing at this fidelity. None when the fidelity leaves a view empty."""
    plan = fidelity.plan(task, "search")
    if len(plan.train) == 0 or len(plan.evals[""]) == 0:
        return None
    return task.constant_prediction_scores(plan)[task.metric_name]


def study_task(study: optuna.Study, glue_dir: str | None = None) -> TaskData:
    """The task data a search study was made with (`glue_dir` overrides its GLUE folder)."""
    return rec.StudyRecord.load(study).data.load(glue_dir)


def sampler_for(record: rec.StudyRecord, space: Any, dims: Any) -> Any:
    """The study's sampler, built from its record."""
    from autopeft.optim import make_sampler

    settings = record.sampler
    opts: dict[str, Any] = {}
    if settings.name.startswith("autopeft"):
        if settings.name == "autopeft":
            opts["surrogate"] = settings.surrogate
        if settings.startup is not None:
            opts["n_startup_trials"] = settings.startup
        if settings.ref_point is not None:
            opts["ref_point"] = tuple(settings.ref_point)
        if settings.copula:
            opts["copula"] = True
        if record.constant_prediction is not None:
            opts["floor"] = record.constant_prediction  # learning nothing: see `optim.learning`
    elif settings.startup is not None and settings.name in ("tpe", "gp"):
        opts["n_startup_trials"] = settings.startup
    return make_sampler(
        settings.name, space, dims, record.num_labels, seed=record.seed, max_params=record.max_params, **opts
    )


def _run_study(
    study: optuna.Study, task: TaskData, options: RunOptions, baselines: tuple[str, ...] = ()
) -> SearchOutcome:
    from autopeft.search.loop import finished_count, summary

    record = rec.StudyRecord.load(study)
    if task.name != record.task or task.num_labels != record.num_labels:
        raise UserError(f"the data does not match study {study.study_name!r} (task {record.task})")
    engine = lazy_engine(record.model, task, options.device)
    if finished_count(study) < record.trials:
        if options.jobs > 1:
            _run_trials_in_workers(study.study_name, options)
        else:
            run_trials(study, task, options, engine)
    _run_baselines(study, record, baselines, engine)
    table, final = summary(study)
    report = None
    if options.report:
        from autopeft.search.report import write_report

        report = write_report(study, options.report)["report"]
    return SearchOutcome(study.study_name, table, final, report)


def _run_baselines(study: optuna.Study, record: rec.StudyRecord, names: tuple[str, ...], engine: Callable) -> None:
    """Manual methods at the search fidelity, for the report; each stored as it finishes."""
    for name in (n for n in names if n not in record.baselines):
        result = engine().run_trial(name, record.fidelity, seed=record.seed, mode="search")
        if not result.ok:
            _log(f"baseline {name} failed: {result.reason}")
            continue
        rec.store_baseline(study, name, {"metric": result.headline, "params": result.params, "percent": result.percent})
        _log(f"baseline {name}: {result.metric_name} {result.headline:.4f}, {result.params:,} params")


def run_trials(study: optuna.Study, task: TaskData, options: RunOptions, engine: Callable[[], Any]) -> None:
    """Ask, train and tell in this process until the study has its trials (in all workers)."""
    import optuna

    from autopeft import models
    from autopeft.optim import config_from_params, optuna_distributions
    from autopeft.search.loop import SearchLoop
    from autopeft.space import SearchSpace

    record = rec.StudyRecord.load(study)
    dims = models.dims_of(record.model)
    space = SearchSpace(dims.num_layers, dims.hidden_size, record.space)
    study = optuna.load_study(
        study_name=study.study_name, storage=study._storage, sampler=sampler_for(record, space, dims)
    )
    artifacts = options.artifact_root / study.study_name

    def run_config(config: Any, number: int, on_epoch: Callable[[Any], bool]) -> Any:
        out = artifacts / f"trial-{number}"
        fidelity, seed = record.fidelity, record.seed
        return engine().run_trial(config, fidelity, seed=seed, mode="search", out_dir=out, on_epoch=on_epoch)

    SearchLoop(
        study=study,
        space=space,
        dims=dims,
        run_config=run_config,
        trials=record.trials,
        num_labels=task.num_labels,
        fidelity=record.fidelity.to_dict(),
        distributions=optuna_distributions(space),
        config_from_params=lambda params: config_from_params(space, params),
        early_stop=record.early_stop,
    ).run()


def _run_trials_in_workers(study_name: str, options: RunOptions) -> None:
    """`options.jobs` worker processes join the study, each with its share of the cores, and run its trials."""
    from autopeft.processes import spawn_pool

    one = replace(options, jobs=1, report=None)
    from autopeft.engine.devices import resolve_device

    with spawn_pool(options.jobs, share_device=resolve_device(options.device)) as pool:
        for future in [pool.submit(_trials_worker, study_name, one) for _ in range(options.jobs)]:
            future.result()  # a worker's error (a UserError too) is raised here


def _trials_worker(study_name: str, options: RunOptions) -> None:
    from autopeft.search.storage import open_study

    study, record = open_study(study_name, options.storage)
    task = record.data.load(options.glue_dir)
    run_trials(study, task, options, lazy_engine(record.model, task, options.device))


def lazy_engine(model: str, task: TaskData, device: str | None) -> Callable[[], Any]:
    """The engine, built on first call and kept: the backbone is loaded once, and only if something trains."""
    from autopeft.engine import Engine

    return functools.cache(lambda: Engine(model, task, device=device))
