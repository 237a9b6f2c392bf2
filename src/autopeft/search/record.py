"""The one owner of a search study's schema: what an AutoPEFT study stores in Optuna's user attributes.

A study stores what its trials mean (identity: model, task, space, fidelity, labels, metric,
sampler), how it searches (settings: budget, seed, sampler options, the task's data arguments,
hypervolume references, the search floor) and, as they come, the results of follow-ups (manual
baselines, retrained and transferred configurations). `StudyRecord.load(study)` reads it all;
`record.save(study)` writes the keys that changed. Trials store their own attributes under the
`TRIAL_*` keys below. The stored format is the one the committed studies already have, so they load.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from autopeft.errors import UserError
from autopeft.search.early_stop import EarlyStop

if TYPE_CHECKING:
    import optuna

    from autopeft.engine.fidelity import Fidelity
    from autopeft.tasks import TaskData

# Fail reasons stored on trials; a reason starting with INTERRUPTED means a dead process, not the engine:
# such a trial does not count toward the budget and its configuration is queued again.
INTERRUPTED = "interrupted"
INTERRUPTED_REASON = f"{INTERRUPTED}: its process died"
UNKNOWN_FAILURE = "unknown failure"

# Trial attributes (written by the search loop, read by results and follow-ups).
TRIAL_CONFIG = "config"
TRIAL_FIDELITY = "fidelity"
TRIAL_WORKER = "worker"
TRIAL_ARTIFACT = "artifact"
TRIAL_FAIL_REASON = "fail_reason"
TRIAL_SKIPPED = "skipped"
TRIAL_PERCENT = "percent"
TRIAL_CURVE = "curve"  # [[share of the budget, score], ...]: every evaluation during training
TRIAL_EARLY_STOPPED = "early_stopped"  # {"share", "score", "observed"}: stopped early (pruned), counted with its cost
TRIAL_COST_KEYS = ("cpu_seconds", "wall_seconds")
TRIAL_RESULT_KEYS = ("metrics", "train_seconds", "eval_seconds", "examples_per_second", "peak_memory_mb", "epochs_run")

# Study attributes that must match for a study to be continued.
IDENTITY_KEYS = ("model", "task", "space", "fidelity", "sampler")
_BASELINES = "baselines"
_RETRAIN_PREFIX = "retrain:"
_TRANSFER_PREFIX = "transfer:"


class StudyError(UserError):
    """A storage that cannot be reached, an unknown study, or a study that does not match."""


# A study name is one safe path component: trial folders go to <artifacts>/<study>/ and the default
# report to reports/<study>/, so a name must not climb out of them ("..", "/", an absolute path).
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


def check_study_name(name: str, flag: str = "--study") -> str:
    """`name` if it is a safe single path component (letters, digits, `_.-`, at most 200, no ".."); else a UserError."""
    if not isinstance(name, str) or not STUDY_NAME.fullmatch(name) or ".." in name:
        shown = name if len(name) <= 60 else f"{name[:60]}... ({len(name)} characters)"
        raise UserError(
            f"{flag} {shown!r} is not a valid study name: use 1 to 200 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit, without '..'"
        )
    return name


@dataclass(frozen=True)
class TaskArgs:
    """The data a study's task was loaded from: a GLUE task by name, or the user's files (parsed)."""

    name: str | None = None
    glue_dir: str | None = None
    train_file: str | None = None
    dev_file: str | None = None
    text_columns: tuple[str, ...] | None = None
    label_column: str = "label"
    task_type: str = "auto"

    def __post_init__(self) -> None:
        if self.name is None and self.train_file is None:
            raise UserError("give --task (a GLUE task) or --train-file")
        if self.text_columns is not None and not all(self.text_columns):
            raise UserError(f"--text-columns {','.join(self.text_columns)!r} has an empty name")

    def load(self, glue_dir: str | None = None) -> TaskData:
        """The task's data (`glue_dir` overrides the stored GLUE folder, e.g. on another machine)."""
        from autopeft.tasks import load_task

        return load_task(**self.load_kwargs(glue_dir))

    def load_kwargs(self, glue_dir: str | None = None) -> dict[str, Any]:
        """`load_task`'s keyword arguments (picklable, for worker processes)."""
        return {
            "name": self.name,
            "glue_dir": glue_dir or self.glue_dir,
            "train_file": self.train_file,
            "dev_file": self.dev_file,
            "text_columns": list(self.text_columns) if self.text_columns else None,
            "label_column": self.label_column,
            "task_type": self.task_type,
        }

    def to_attr(self) -> dict[str, Any]:
        return {
            "task": self.name,
            "glue_dir": self.glue_dir,
            "train_file": self.train_file,
            "dev_file": self.dev_file,
            "text_columns": ",".join(self.text_columns) if self.text_columns else None,
            "label_column": self.label_column,
            "task_type": self.task_type,
        }

    @classmethod
    def from_attr(cls, data: Mapping[str, Any]) -> TaskArgs:
        columns = data.get("text_columns")
        return cls(
            name=data.get("task"),
            glue_dir=data.get("glue_dir"),
            train_file=data.get("train_file"),
            dev_file=data.get("dev_file"),
            text_columns=tuple(c.strip() for c in columns.split(",")) if columns else None,
            label_column=data.get("label_column") or "label",
            task_type=data.get("task_type") or "auto",
        )


@dataclass(frozen=True)
class SamplerSettings:
    """Which sampler a study searches with, and its options."""

    name: str = "autopeft"
    surrogate: str = "saas"  # AutoPEFT's GP: saas (NUTS), saas-map or gp
    startup: int | None = None  # random trials first (None: the sampler's default)
    ref_point: tuple[float, float] | None = None  # AutoPEFT's hypervolume reference (metric, params)
    copula: bool = False  # AutoPEFT: rank-to-normal transform of the metric

    def __post_init__(self) -> None:
        if self.startup is not None and (isinstance(self.startup, bool) or self.startup < 0):
            raise UserError(f"--startup must be a count of at least 0, got {self.startup}")

    def options_attr(self) -> dict[str, Any]:
        return {
            "surrogate": self.surrogate,
            "startup": self.startup,
            "ref_point": list(self.ref_point) if self.ref_point is not None else None,
            "copula": self.copula,
        }


@dataclass(frozen=True)
class StudyRecord:
    """Everything an AutoPEFT search study stores about itself, typed."""

    # identity: what the trials mean
    model: str
    task: str
    space: str
    fidelity: Fidelity
    num_labels: int
    metric: str
    sampler: SamplerSettings
    # settings: how it searches (trials and budget may change when a study is continued)
    trials: int
    max_params: int | None
    seed: int
    data: TaskArgs
    params_ref: int  # hypervolume: the largest configuration of the space (or of the budget)
    params_min: int  # hypervolume: the smallest configuration
    backbone_params: int
    constant_prediction: float | None  # the search floor: a constant prediction's held-out score
    metric_ref: float = 0.0
    early_stop: EarlyStop = field(default_factory=EarlyStop)  # stop trials that cannot reach the front
    heldout_size: int | None = None  # examples in the held-out slice the trials are scored on
    calibration: dict[str, Any] | None = None  # the probe that chose the fidelity (`search --fidelity auto`)
    # follow-up results, written as they come
    baselines: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    retrained: Mapping[int, dict[str, Any]] = field(default_factory=dict)
    transfers: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        return {key: value for key, value in self.to_attrs().items() if key in IDENTITY_KEYS}

    def to_attrs(self) -> dict[str, Any]:
        """The user attributes this record is stored as."""
        attrs: dict[str, Any] = {
            "model": self.model,
            "task": self.task,
            "space": self.space,
            "fidelity": self.fidelity.to_dict(),
            "num_labels": self.num_labels,
            "metric": self.metric,
            "sampler": self.sampler.name,
            "trials": self.trials,
            "max_params": self.max_params,
            "seed": self.seed,
            "sampler_options": self.sampler.options_attr(),
            "data": self.data.to_attr(),
            "params_ref": self.params_ref,
            "params_min": self.params_min,
            "metric_ref": self.metric_ref,
            "backbone_params": self.backbone_params,
            "constant_prediction": self.constant_prediction,
            "early_stop": self.early_stop.to_attr(),
            "heldout_size": self.heldout_size,
        }
        if self.calibration is not None:
            attrs["calibration"] = self.calibration
        if self.baselines:
            attrs[_BASELINES] = dict(self.baselines)
        attrs.update({f"{_RETRAIN_PREFIX}{n}": v for n, v in self.retrained.items()})
        attrs.update({f"{_TRANSFER_PREFIX}{t}": v for t, v in self.transfers.items()})
        return attrs

    def save(self, study: optuna.Study) -> None:
        """Write the attributes that differ from the stored ones (so concurrent workers rewrite nothing)."""
        stored = study.user_attrs
        for key, value in self.to_attrs().items():
            if key not in stored or stored[key] != value:
                study.set_user_attr(key, value)

    @classmethod
    def load(cls, study: optuna.Study) -> StudyRecord:
        """The record of an AutoPEFT search study; a StudyError for any other study."""
        from autopeft.engine.fidelity import Fidelity, FidelityError

        attrs = study.user_attrs
        if "model" not in attrs or "trials" not in attrs:
            raise StudyError(f"study {study.study_name!r} was not made by autopeft search")
        options = attrs.get("sampler_options") or {}
        try:
            fidelity = Fidelity.from_dict(attrs["fidelity"])
        except (FidelityError, TypeError) as err:
            raise StudyError(f"study {study.study_name!r} stores a fidelity this version cannot read: {err}") from None
        ref_point = options.get("ref_point")
        return cls(
            model=attrs["model"],
            task=attrs["task"],
            space=attrs["space"],
            fidelity=fidelity,
            num_labels=int(attrs["num_labels"]),
            metric=attrs.get("metric", "metric"),
            sampler=SamplerSettings(
                name=attrs["sampler"],
                surrogate=options.get("surrogate", "saas"),
                startup=options.get("startup"),
                ref_point=tuple(ref_point) if ref_point is not None else None,
                copula=bool(options.get("copula", False)),
            ),
            trials=int(attrs["trials"]),
            max_params=attrs.get("max_params"),
            seed=int(attrs.get("seed", 42)),
            data=TaskArgs.from_attr(attrs.get("data") or {"task": attrs["task"]}),
            params_ref=int(attrs["params_ref"]),
            params_min=int(attrs["params_min"]),
            backbone_params=int(attrs.get("backbone_params", 0)),
            constant_prediction=attrs.get("constant_prediction"),
            metric_ref=float(attrs.get("metric_ref", 0.0)),
            early_stop=EarlyStop.from_attr(attrs.get("early_stop")),
            heldout_size=attrs.get("heldout_size"),
            calibration=attrs.get("calibration"),
            baselines=dict(attrs.get(_BASELINES) or {}),
            retrained={
                int(k.removeprefix(_RETRAIN_PREFIX)): v for k, v in attrs.items() if k.startswith(_RETRAIN_PREFIX)
            },
            transfers={
                k.removeprefix(_TRANSFER_PREFIX): v for k, v in sorted(attrs.items()) if k.startswith(_TRANSFER_PREFIX)
            },
        )

    def replace(self, **changes: Any) -> StudyRecord:
        return replace(self, **changes)

    def check_continues(self, stored: StudyRecord, study_name: str) -> None:
        """Refuse to continue a study made for another job (model, task, space, fidelity or sampler)."""
        have, wanted = stored.identity(), self.identity()
        for key in IDENTITY_KEYS:
            old, new = have[key], wanted[key]
            if old != new:
                if isinstance(old, dict) and isinstance(new, dict):  # name only the knobs that differ
                    differ = [k for k in {**old, **new} if old.get(k) != new.get(k)]
                    old, new = {k: old.get(k) for k in differ}, {k: new.get(k) for k in differ}
                raise StudyError(
                    f"study {study_name!r} was created with {key} {_show(old)}, "
                    f"not {_show(new)}; use another --study name or the same {key}"
                )


# Follow-up results are written one at a time, as each finishes (a killed follow-up keeps what it did).


def store_baseline(study: optuna.Study, name: str, result: dict[str, Any]) -> None:
    done = dict(study.user_attrs.get(_BASELINES) or {})
    done[name] = result
    study.set_user_attr(_BASELINES, done)


def store_retrained(study: optuna.Study, number: int, summary: dict[str, Any]) -> None:
    study.set_user_attr(f"{_RETRAIN_PREFIX}{number}", summary)


def store_transfer(study: optuna.Study, task: str, results: dict[str, Any]) -> None:
    """Every transferred configuration so far, under the task's key."""
    study.set_user_attr(f"{_TRANSFER_PREFIX}{task}", results)


def is_autopeft_study(study: optuna.Study) -> bool:
    return "model" in study.user_attrs and "trials" in study.user_attrs


def stored_attrs(study: optuna.Study) -> dict[str, Any]:
    """Every stored attribute as plain JSON (for `pareto.json`, which carries the study's whole record)."""
    return dict(study.user_attrs)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return repr(value)
