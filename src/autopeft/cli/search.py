"""`autopeft search` and `autopeft worker`: run a persistent, resumable, shareable search.

`search` creates the study (or continues it) and runs trials in this process; `worker` joins an
existing study and reads everything it needs (model, task, space, fidelity, sampler, budget) from
it, so workers on other machines need only the storage URL and the study name.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autopeft.cli.options import add_data_arguments, add_fidelity_arguments, fidelity_from_args, task_from_args
from autopeft.errors import UserError

HELP = "search PEFT configurations: a multi-objective study of task score and trainable parameters"
WORKER_HELP = "join an existing search study (e.g. on PostgreSQL) and run its trials"
SEARCH_FIDELITY = "epochs=1,max_train_samples=2000"  # the paper's cheap search: 1 epoch on a subset
SAMPLER_NAMES = ("autopeft", "random", "tpe", "nsga2", "gp", "autopeft-params-modelled", "autopeft-plain-gp")
DEFAULT_ARTIFACTS = Path("studies") / "artifacts"
DATA_KEYS = ("task", "glue_dir", "train_file", "dev_file", "text_columns", "label_column", "task_type")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage", help="study storage URL (default: $AUTOPEFT_STORAGE or sqlite:///studies/autopeft.db)"
    )
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="trials at once, in worker processes on this machine that share its cores (default 1)",
    )
    parser.add_argument("--report", type=Path, metavar="DIR", help="write the report here when the search ends")
    parser.add_argument(
        "--artifacts",
        type=Path,
        metavar="DIR",
        help="save each trial's trained adapter under DIR/<study>/trial-<n> (default: studies/artifacts)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default="minilm", help="local model folder, hub id, or minilm/tiny-bert/tiny-roberta"
    )
    add_data_arguments(parser)
    parser.add_argument("--trials", type=int, required=True, help="trials to finish in this study (in all workers)")
    parser.add_argument("--sampler", choices=SAMPLER_NAMES, default="autopeft")
    parser.add_argument(
        "--surrogate", choices=("saas", "saas-map", "gp"), default="saas", help="AutoPEFT's GP (default: SAAS by NUTS)"
    )
    parser.add_argument("--startup", type=int, help="random trials before the optimiser starts (default: sampler's)")
    parser.add_argument(
        "--ref-point",
        metavar="METRIC,PARAMS",
        help="AutoPEFT's hypervolume reference point, e.g. 0.5,200000 (default: the worst metric observed and "
        "just beyond the largest allowed configuration)",
    )
    parser.add_argument("--copula", action="store_true", help="AutoPEFT: rank-to-normal transform of the metric")
    parser.add_argument("--space", choices=("paper", "extended"), default="paper")
    add_fidelity_arguments(parser, SEARCH_FIDELITY)
    parser.add_argument("--max-params", metavar="P", help="hard budget: a count (50000) or %% of the backbone (0.5%%)")
    parser.add_argument("--study", help="study name (default: <task>-<model>-<space>-<sampler>)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the sampler and of every trial's training")
    parser.add_argument(
        "--baselines",
        metavar="NAMES",
        help="also train these manual methods at the search fidelity for the report, e.g. pfeiffer,lora,full",
    )
    _add_common(parser)


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", required=True, help="the study to join")
    parser.add_argument("--glue-dir", metavar="DIR", help="GLUE folder on this machine (default: the study's)")
    _add_common(parser)


def parse_max_params(text: str | None) -> tuple[int | None, float | None]:
    """--max-params as (count, None) or (None, percent)."""
    if text is None:
        return None, None
    raw = text.strip().replace("_", "").replace(",", "")
    match = re.fullmatch(r"(\d+(?:\.\d+)?(?:e\d+)?)(%?)", raw)
    if not match:
        raise UserError(f"--max-params must be a count (e.g. 50000) or a percentage (e.g. 0.5%), got {text!r}")
    value = float(match.group(1))
    if value <= 0:
        raise UserError(f"--max-params must be positive, got {text!r}")
    return (None, value) if match.group(2) else (int(value), None)


def parse_ref_point(text: str | None) -> list[float] | None:
    """--ref-point "METRIC,PARAMS" as [metric, params], in the study's units."""
    if text is None:
        return None
    try:
        metric, params = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--ref-point must be METRIC,PARAMS (e.g. 0.5,200000), got {text!r}") from None
    if not (math.isfinite(metric) and params > 0):
        raise UserError(f"--ref-point needs a finite metric and a positive parameter count, got {text!r}")
    return [metric, params]


def parse_baselines(text: str | None) -> list[str]:
    from autopeft.methods import METHODS

    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise UserError(f"unknown baseline {unknown[0]!r}; known: {', '.join(METHODS)}")
    return names


def default_study_name(task: str, model: str, space: str, sampler: str) -> str:
    model_name = Path(model.rstrip("/")).name or model
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{task}-{model_name}-{space}-{sampler}")


def run(args: argparse.Namespace) -> int:
    from autopeft import models
    from autopeft.engine import Fidelity
    from autopeft.optim import Budget
    from autopeft.space import SearchSpace
    from autopeft.study import StudyIdentity, create_or_continue, open_storage

    if args.trials < 1:
        raise UserError(f"--trials must be at least 1, got {args.trials}")
    _check_jobs(args)
    baselines = parse_baselines(args.baselines)
    if (args.ref_point or args.copula) and not args.sampler.startswith("autopeft"):
        raise UserError(f"--ref-point and --copula are AutoPEFT sampler options, not {args.sampler}'s")
    ref_point = parse_ref_point(args.ref_point)
    fidelity = fidelity_from_args(args, Fidelity.parse(SEARCH_FIDELITY))
    task = task_from_args(args)
    dims = models.dims_of(args.model)
    space = SearchSpace(dims.num_layers, dims.hidden_size, args.space)
    max_params, max_percent = parse_max_params(args.max_params)
    budget = Budget.of(space, dims, max_params, max_percent)  # refuses budgets below the smallest config
    identity = StudyIdentity(
        model=args.model,
        task=task.name,
        space=args.space,
        fidelity=fidelity.to_dict(),
        num_labels=task.num_labels,
        metric=task.metric_name,
        sampler=args.sampler,
    )
    name = args.study or default_study_name(task.name, args.model, args.space, args.sampler)
    study = create_or_continue(name, open_storage(args.storage), identity)
    # Everything a worker needs to join; the budget and the trial count may change on continuing.
    settings = {
        "trials": args.trials,
        "max_params": budget.max_params,
        "seed": args.seed,
        "sampler_options": {
            "surrogate": args.surrogate,
            "startup": args.startup,
            "ref_point": ref_point,
            "copula": args.copula,
        },
        "data": {key: getattr(args, key, None) for key in DATA_KEYS},
        "params_ref": budget.largest if budget.max_params is None else Budget.of(space, dims).largest,
        "params_min": budget.smallest,
        "metric_ref": 0.0,
        "backbone_params": dims.backbone_params,
        "constant_prediction": search_floor(task, fidelity),
    }
    stored = study.user_attrs
    for key, value in settings.items():
        if key not in stored or stored[key] != value:
            study.set_user_attr(key, value)
    code = _run_study(study, task, args, baselines)
    return code


def search_floor(task: Any, fidelity: Any) -> float | None:
    """What a constant prediction scores on the search's held-out slice (`TaskData.constant_prediction_scores`):
    trials near it learnt nothing at this fidelity. None when the fidelity leaves a view empty."""
    plan = fidelity.plan(task, "search")
    if len(plan.train) == 0 or len(plan.evals[""]) == 0:
        return None
    return task.constant_prediction_scores(plan)[task.metric_name]


def run_worker(args: argparse.Namespace) -> int:
    from autopeft.study import load_study, open_storage

    _check_jobs(args)
    study = load_study(args.study, open_storage(args.storage))
    return _run_study(study, study_task(study, args.glue_dir), args)


def _check_jobs(args: argparse.Namespace) -> None:
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}")


def study_task(study: Any, glue_dir: str | None = None) -> Any:
    """The task data a search study was made with (`glue_dir` overrides its GLUE folder)."""
    from autopeft.tasks import load_task

    attrs = study.user_attrs
    if "trials" not in attrs:
        raise UserError(f"study {study.study_name!r} was not made by autopeft search")
    data = dict(attrs["data"])
    columns = data.get("text_columns")
    return load_task(
        data.get("task"),
        glue_dir=glue_dir or data.get("glue_dir"),
        train_file=data.get("train_file"),
        dev_file=data.get("dev_file"),
        text_columns=[c.strip() for c in columns.split(",")] if columns else None,
        label_column=data.get("label_column") or "label",
        task_type=data.get("task_type") or "auto",
    )


def _sampler_for(study: Any, space: Any, dims: Any, num_labels: int) -> Any:
    from autopeft.optim import make_sampler

    attrs = study.user_attrs
    options = attrs.get("sampler_options", {})
    opts: dict[str, Any] = {}
    if attrs["sampler"].startswith("autopeft"):
        if attrs["sampler"] == "autopeft":
            opts["surrogate"] = options.get("surrogate", "saas")
        if options.get("startup") is not None:
            opts["n_startup_trials"] = options["startup"]
        if options.get("ref_point") is not None:
            opts["ref_point"] = tuple(options["ref_point"])
        if options.get("copula"):
            opts["copula"] = True
    elif options.get("startup") is not None and attrs["sampler"] in ("tpe", "gp"):
        opts["n_startup_trials"] = options["startup"]
    return make_sampler(
        attrs["sampler"], space, dims, num_labels, seed=attrs["seed"], max_params=attrs["max_params"], **opts
    )


def _run_study(study: Any, task: Any, args: argparse.Namespace, baselines: list[str] = ()) -> int:
    from autopeft.engine import Fidelity
    from autopeft.search import finished_count, summary

    attrs = study.user_attrs
    if task.name != attrs["task"] or task.num_labels != attrs["num_labels"]:
        raise UserError(f"the data does not match study {study.study_name!r} (task {attrs['task']})")
    fidelity = Fidelity.from_dict(attrs["fidelity"])
    engine = _lazy_engine(attrs["model"], task, args.device)
    if finished_count(study) < attrs["trials"]:
        if args.jobs > 1:
            _run_trials_in_workers(study.study_name, args)
        else:
            _run_trials(study, task, args, engine)
    done = study.user_attrs.get("baselines", {})
    todo = [name for name in baselines if name not in done]
    for name in todo:
        result = engine().run_trial(name, fidelity, seed=attrs["seed"], mode="search")
        if not result.ok:
            print(f"baseline {name} failed: {result.reason}", file=sys.stderr)
            continue
        done[name] = {"metric": result.headline, "params": result.params, "percent": result.percent}
        study.set_user_attr("baselines", done)
        print(f"baseline {name}: {result.metric_name} {result.headline:.4f}, {result.params:,} params", file=sys.stderr)

    table, final = summary(study)
    print(table)
    if args.report:
        from autopeft.report import write_report

        paths = write_report(study, args.report)
        print(f"report: {paths['report']}")
    print(json.dumps(final))
    return 0


def _run_trials(study: Any, task: Any, args: argparse.Namespace, engine: Callable[[], Any]) -> None:
    """Ask, train and tell in this process until the study has its trials (in all workers)."""
    import optuna

    from autopeft import models
    from autopeft.engine import Fidelity
    from autopeft.optim import config_from_params, optuna_distributions
    from autopeft.search import SearchLoop
    from autopeft.space import SearchSpace

    attrs = study.user_attrs
    dims = models.dims_of(attrs["model"])
    space = SearchSpace(dims.num_layers, dims.hidden_size, attrs["space"])
    fidelity = Fidelity.from_dict(attrs["fidelity"])
    sampler = _sampler_for(study, space, dims, task.num_labels)
    study = optuna.load_study(study_name=study.study_name, storage=study._storage, sampler=sampler)
    artifacts = (args.artifacts or DEFAULT_ARTIFACTS).resolve() / study.study_name

    def run_config(config: Any, number: int) -> Any:
        out = artifacts / f"trial-{number}"
        return engine().run_trial(config, fidelity, seed=attrs["seed"], mode="search", out_dir=out)

    SearchLoop(
        study=study,
        space=space,
        dims=dims,
        run_config=run_config,
        trials=attrs["trials"],
        num_labels=task.num_labels,
        fidelity=attrs["fidelity"],
        distributions=optuna_distributions(space),
        config_from_params=lambda params: config_from_params(space, params),
    ).run()


def _run_trials_in_workers(study_name: str, args: argparse.Namespace) -> None:
    """`args.jobs` worker processes join the study, each with its share of the cores, and run its trials."""
    from autopeft.processes import spawn_pool

    worker_args = argparse.Namespace(**{**vars(args), "jobs": 1})
    with spawn_pool(args.jobs) as pool:
        for future in [pool.submit(_trials_worker, study_name, worker_args) for _ in range(args.jobs)]:
            future.result()  # a worker's error (a UserError too) is raised here


def _trials_worker(study_name: str, args: argparse.Namespace) -> None:
    from autopeft.study import load_study, open_storage

    study = load_study(study_name, open_storage(args.storage))
    task = study_task(study, getattr(args, "glue_dir", None))
    _run_trials(study, task, args, _lazy_engine(study.user_attrs["model"], task, args.device))


def _lazy_engine(model: str, task: Any, device: str | None) -> Callable[[], Any]:
    """The engine, built on first call and kept: the backbone is loaded once, and only if something trains."""
    from autopeft.engine import Engine

    return functools.cache(lambda: Engine(model, task, device=device))
