"""After a search: retrain Pareto configurations at full fidelity, transfer them to other tasks,
export a trial's trained adapter. Results go back into the study (through its record, since
Optuna keeps finished trials read-only)."""

from __future__ import annotations

import shutil
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autopeft.errors import UserError
from autopeft.search import record as rec
from autopeft.search.results import TrialRow, completed_rows, pareto_rows
from autopeft.search.storage import worker_id

if TYPE_CHECKING:
    from autopeft.engine.fidelity import Fidelity

DEFAULT_TOP = 3  # Pareto configurations followed up when neither a count nor trial numbers are given
# The knobs of a follow-up's budget: how long and on how much it trains and scores. Every other knob
# (pooling, lengths, batch sizes, learning rate, regularisation, precision) is the search's regime,
# which its follow-ups inherit: a configuration is retrained as it was searched, only for longer.
BUDGET_KNOBS = ("epochs", "max_steps", "max_train_samples", "train_fraction", "max_eval_samples", "patience",
                "heldout_fraction", "split_seed")  # fmt: skip


@dataclass(frozen=True)
class FollowUp:
    """Which trials of which study to train at the final fidelity, and with which seeds.

    `fidelity` holds the knobs asked for (`--fidelity`, `--epochs`, ...) on top of the paper's final
    budget (20 epochs, patience 10) and the study's own regime (`final_fidelity`).
    """

    study: str
    seeds: tuple[int, ...]
    fidelity: Mapping[str, Any] = field(default_factory=dict)
    top: int | None = None  # the K best-scoring Pareto configurations ...
    trials: tuple[int, ...] | None = None  # ... or these trial numbers (default: the DEFAULT_TOP best)
    storage: str | None = None
    device: str | None = None
    glue_dir: str | None = None  # the study's GLUE folder on this machine (retrain)

    def __post_init__(self) -> None:
        from autopeft.engine.fidelity import Fidelity

        rec.check_study_name(self.study)
        if not self.seeds:
            raise UserError("--seeds is empty")
        if self.top is not None and self.trials is not None:
            raise UserError("give --top or --trials, not both")
        if self.top is not None and self.top < 1:
            raise UserError(f"--top must be at least 1, got {self.top}")
        if self.trials is not None and (not self.trials or min(self.trials) < 0):
            raise UserError(f"--trials must name trial numbers (0 or more), got {list(self.trials)}")
        if self.trials is not None and len(set(self.trials)) != len(self.trials):
            raise UserError(f"--trials names a trial twice: {list(self.trials)}")
        Fidelity.paper_final().replace(**self.fidelity)  # a bad knob is refused now, not after the study opens


def final_fidelity(searched: Fidelity, changes: Mapping[str, Any] | None = None) -> Fidelity:
    """The fidelity a follow-up of a search at `searched` trains with: the search's regime (every knob
    but `BUDGET_KNOBS`), the paper's final budget, then `changes` (the knobs the user named)."""
    from autopeft.engine.fidelity import Fidelity

    final = Fidelity.paper_final()
    budget = {knob: getattr(final, knob) for knob in BUDGET_KNOBS}
    return searched.replace(**budget).replace(**dict(changes or {}))


def retrain(request: FollowUp) -> dict[str, Any]:
    """Train the chosen configurations on the study's own task; results stored in the study as they come."""
    study, record = _open(request)
    rows = _rows(request, study)
    task = record.data.load(request.glue_dir)
    return follow_up(
        study,
        rows,
        task,
        final_fidelity(record.fidelity, request.fidelity),
        request.seeds,
        device=request.device,
        describe=lambda row: f"{row.config.describe()} ({row.params:,} params)",
        store=lambda row, summary: rec.store_retrained(study, row.number, summary),
        key="retrained",
    )


def transfer(request: FollowUp, data: rec.TaskArgs) -> dict[str, Any]:
    """Train the chosen configurations on another task (as the paper transferred RTE's to GLUE)."""
    task = data.load()  # the new task's data first: a typo there is the likelier mistake
    study, record = _open(request)
    if data.train_file is None and record.data.train_file is None and data.name == record.data.name:
        raise UserError(f"--task {data.name} is the study's own task: `autopeft retrain` trains its configurations")
    rows = _rows(request, study)
    results: dict[str, dict[str, Any]] = {}

    def store(row: TrialRow, summary: dict[str, Any]) -> None:
        extra = {"config": row.config.to_dict(), "params": row.params, "percent": row.percent}
        results[str(row.number)] = {**summary, **extra}
        rec.store_transfer(study, task.name, results)

    return follow_up(
        study,
        rows,
        task,
        final_fidelity(record.fidelity, request.fidelity),
        request.seeds,
        device=request.device,
        describe=lambda row: f"{row.config.describe()} on {task.name}",
        store=store,
        key="transfer",
    )


def _open(request: FollowUp) -> tuple[Any, rec.StudyRecord]:
    """The study (existing, made by autopeft search; nothing created) and its record."""
    from autopeft.engine.devices import check_device
    from autopeft.search.storage import open_study

    check_device(request.device)
    study, record = open_study(request.study, request.storage)
    check_device(request.device, record.fidelity.precision, 1, record.model)
    return study, record


def _rows(request: FollowUp, study: Any) -> list[TrialRow]:
    """The trials the request follows up (`--trials`, or the best `--top` of the front)."""
    top = request.top or (None if request.trials else DEFAULT_TOP)
    return choose_rows(study, top, request.trials)


def choose_rows(study: Any, top: int | None, numbers: Sequence[int] | None) -> list[TrialRow]:
    """The trials to follow up: the named ones, or the `top` best-scoring Pareto configurations."""
    rows = completed_rows(study)
    if numbers:
        by_number = {r.number: r for r in rows}
        missing = [n for n in numbers if n not in by_number]
        if missing:
            raise UserError(f"trial {missing[0]} of study {study.study_name!r} is not a completed trial")
        return [by_number[n] for n in numbers]
    front = pareto_rows(rows)
    if not front:
        raise UserError(f"study {study.study_name!r} has no completed trial yet")
    best_first = sorted(front, key=lambda r: (-r.metric, r.params))
    return sorted(best_first[: top or len(front)], key=lambda r: r.params)


def run_seeds(
    engine: Any, item: Any, fidelity: Any, seeds: Sequence[int], log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Train `item` once per seed in final mode (train on train, score dev); mean and spread."""
    log = log or (lambda line: print(line, flush=True))
    scores: list[float] = []
    runs = []
    for seed in seeds:
        result = engine.run_trial(item, fidelity, seed=seed, mode="final")
        if not result.ok:
            log(f"  seed {seed}: failed: {result.reason}")
            runs.append({"seed": seed, "failed": result.reason})
            continue
        scores.append(float(result.headline))
        runs.append({"seed": seed, "score": result.headline, "metrics": result.metrics, "epochs": result.epochs_run})
        log(f"  seed {seed}: {result.metric_name} {result.headline:.4f} ({result.epochs_run:.1f} epochs)")
    if not scores:
        raise UserError("every seed failed; see the reasons above")
    return {
        "mean": statistics.fmean(scores),
        "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
        "scores": scores,
        "seeds": list(seeds),
        "runs": runs,
        "metric": engine.task.metric_name,
        "task": engine.task.name,
        "fidelity": fidelity.to_dict(),
    }


def follow_up(
    study: Any,
    rows: Sequence[TrialRow],
    task: Any,
    fidelity: Any,
    seeds: Sequence[int],
    *,
    device: str | None,
    describe: Callable[[TrialRow], str],
    store: Callable[[TrialRow, dict[str, Any]], None],
    key: str,
) -> dict[str, Any]:
    """Train each row's configuration on `task` with every seed (`run_seeds`), in the study's model.

    `describe` gives the line announcing a row; `store` saves its summary into the study as soon as
    it is known, so an interrupted run keeps what it finished. Returns the closing summary: the
    study, the task and, under `key`, mean, std and size per trial number.
    """
    from autopeft.engine import Engine

    print(f"fidelity: {fidelity.describe()}", flush=True)
    engine = Engine(rec.StudyRecord.load(study).model, task, device=device)
    table: dict[str, dict[str, Any]] = {}
    for row in rows:
        print(f"trial {row.number}: {describe(row)}", flush=True)
        summary = run_seeds(engine, row.config, fidelity, seeds)
        store(row, summary)
        print(f"trial {row.number}: {summary['metric']} {summary['mean']:.4f} ± {summary['std']:.4f}", flush=True)
        table[str(row.number)] = {
            "mean": summary["mean"],
            "std": summary["std"],
            "params": row.params,
            "percent": row.percent,
        }
    return {"study": study.study_name, "task": task.name, "metric_name": task.metric_name, key: table}


EXPORT_FORMATS = ("adapters", "peft")


def export_trial(
    study: Any,
    number: int,
    out: Path,
    *,
    format: str = "adapters",
    artifacts: Path | None = None,
    device: str | None = None,
    glue_dir: str | None = None,
) -> dict[str, Any]:
    """Write trial `number`'s trained model to `out`: its trial folder (adapters' format) or, with
    `format="peft"`, a Hugging Face `peft` adapter (LoRA configurations only).

    The trial folder is the one the search saved, if it is on this machine inside the study's
    artifact folder (`artifacts/<study>`); otherwise the trial is retrained with the study's
    fidelity and seed (deterministic on the same kind of machine). Every check comes before any
    work; the returned dict says which source was used and both scores.
    """
    import tempfile

    from optuna.trial import TrialState

    from autopeft.search.request import DEFAULT_ARTIFACTS
    from autopeft.space import PEFTConfig

    if format not in EXPORT_FORMATS:
        raise UserError(f"unknown export format {format!r}; known: {', '.join(EXPORT_FORMATS)}")
    record = rec.StudyRecord.load(study)  # refuses a study autopeft search did not make
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials) or trials[number].state != TrialState.COMPLETE:
        raise UserError(f"trial {number} of study {study.study_name!r} is not a completed trial")
    trial = trials[number]
    config = PEFTConfig.from_dict(trial.user_attrs[rec.TRIAL_CONFIG])
    if format == "peft" and set(config.active_modules) != {"lora"}:
        raise UserError(
            f"trial {number} ({config.describe()}) cannot be exported to peft: only LoRA configurations map "
            "exactly (peft has no bottleneck adapters, and its prefix-tuning shifts position ids)"
        )
    check_output_folder(out)
    root = ((artifacts or DEFAULT_ARTIFACTS) / study.study_name).resolve()
    artifact = trial.user_attrs.get(rec.TRIAL_ARTIFACT) or {}
    source = Path(artifact.get("path", "")).resolve()
    local = artifact.get("host") == worker_id()["host"] and (source / "setup.json").is_file()
    if local and not source.is_relative_to(root):
        raise UserError(
            f"trial {number}'s stored folder {source} is outside the study's artifact folder {root}; "
            "pass the --artifacts the search used"
        )
    with tempfile.TemporaryDirectory(prefix="autopeft-export-") as scratch:
        info: dict[str, Any] = {"trial": number, "format": format, "path": str(out), "metric": trial.values[0]}
        if local:
            folder, info["source"] = source, "search"
        else:
            host = artifact.get("host")
            where = host if host and host != worker_id()["host"] else "another machine"
            print(f"trial {number} was trained on {where}: retraining it here", file=sys.stderr)
            from autopeft.engine import Engine

            folder = Path(scratch) / "trial"
            engine = Engine(record.model, record.data.load(glue_dir), device=device)
            result = engine.run_trial(config, record.fidelity, seed=record.seed, mode="search", out_dir=folder)
            if not result.ok:
                raise UserError(f"retraining trial {number} failed: {result.reason}")
            info["source"], info["retrained_metric"] = "retrained", result.headline
        if format == "peft":
            from autopeft.peft.hf_export import export_peft

            export_peft(folder, out)
        else:
            from autopeft.engine.saving import make_portable

            shutil.copytree(folder, out, dirs_exist_ok=True, symlinks=True)
            make_portable(out)  # names the backbone as the user did, the head's labels, how to load
    return info


def check_output_folder(out: Path) -> None:
    """Refuse, before any work, an output folder that is a file, is not empty, or cannot be created."""
    from autopeft.paths import check_output_folder as check

    check(out, empty=True)
