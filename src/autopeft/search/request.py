"""What a search is asked to do, as typed values: the study to make (`SearchRequest`) and how this
process works on it (`RunOptions`). The CLI and the GLUE bench build these; `search.run` takes them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from autopeft.errors import UserError
from autopeft.methods import METHODS
from autopeft.names import SAMPLERS, SPACES, SURROGATES
from autopeft.search.early_stop import EarlyStop
from autopeft.search.record import SamplerSettings, TaskArgs, check_study_name

if TYPE_CHECKING:
    from autopeft.engine.fidelity import Fidelity
    from autopeft.search.calibrate import Calibration

SEARCH_FIDELITY = "epochs=1,max_train_samples=2000"  # the paper's cheap search: 1 epoch on a subset
DEFAULT_ARTIFACTS = Path("studies") / "artifacts"


@dataclass(frozen=True)
class RunOptions:
    """How this process works on a study; nothing here is stored in it."""

    storage: str | None = None  # study storage URL (None: $AUTOPEFT_STORAGE or studies/autopeft.db)
    device: str | None = None  # cpu, cuda, ... (None: cuda when available)
    jobs: int = 1  # trials at once, in worker processes that share this machine's cores
    report: Path | None = None  # write the report here when the search ends
    artifacts: Path | None = None  # trial adapters go under artifacts/<study>/trial-<n>
    glue_dir: str | None = None  # a worker's GLUE folder (None: the study's)

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise UserError(f"--jobs must be at least 1, got {self.jobs}")

    def check_folders(self) -> None:
        """Refuse, before any work, a report or artifact folder that cannot be written."""
        from autopeft.paths import check_output_folder

        if self.report is not None:
            check_output_folder(self.report, flag="--report")
        check_output_folder(self.artifacts or DEFAULT_ARTIFACTS, flag="--artifacts")

    @property
    def artifact_root(self) -> Path:
        return (self.artifacts or DEFAULT_ARTIFACTS).resolve()


@dataclass(frozen=True)
class SearchRequest:
    """A search to create (or continue): model, task, space, budget, sampler and fidelity."""

    model: str
    data: TaskArgs
    trials: int  # trials to finish in the study, over every worker
    fidelity: Fidelity
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    space: str = "paper"
    max_params: int | None = None  # a hard budget as a count ...
    max_percent: float | None = None  # ... or as % of the backbone
    study: str | None = None  # None: <task>-<model>-<space>-<sampler>
    seed: int = 42  # the sampler's and every trial's training seed
    baselines: tuple[str, ...] = ()  # manual methods also trained at the search fidelity, for the report
    early_stop: EarlyStop = field(default_factory=EarlyStop)
    warm_start: str | None = None  # a finished search of another task, same model and space, same storage
    auto_fidelity: Calibration | None = None  # choose the fidelity by this probe (`fidelity` is its base)

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise UserError(f"--trials must be at least 1, got {self.trials}")
        if not 0 <= self.seed < 2**32:
            raise UserError(f"--seed must be in [0, 2^32), got {self.seed}")
        if self.sampler.name not in SAMPLERS:
            raise UserError(f"unknown sampler {self.sampler.name!r}; known: {', '.join(SAMPLERS)}")
        if self.sampler.surrogate not in SURROGATES:
            raise UserError(f"unknown surrogate {self.sampler.surrogate!r}; known: {', '.join(SURROGATES)}")
        if self.space not in SPACES:
            raise UserError(f"unknown space {self.space!r}; known: {', '.join(SPACES)}")
        autopeft = self.sampler.name.startswith("autopeft")
        if (self.sampler.ref_point is not None or self.sampler.copula) and not autopeft:
            raise UserError(f"--ref-point and --copula are AutoPEFT sampler options, not {self.sampler.name}'s")
        if self.max_percent is not None and not 0 < self.max_percent <= 100:
            raise UserError(f"--max-params {self.max_percent:g}% is not a share of the backbone (0 < P <= 100%)")
        if self.study is not None:
            check_study_name(self.study)
        unknown = [n for n in self.baselines if n not in METHODS]
        if unknown:
            raise UserError(f"unknown baseline {unknown[0]!r}; known: {', '.join(METHODS)}")
        if self.early_stop.on and self.fidelity.evaluations < 2 and self.auto_fidelity is None:
            raise UserError(
                "early stopping needs more than one evaluation per trial, and the fidelity has one; "
                "use epochs=2 or more, evals_per_epoch=2 or more, or --early-stop off"
            )

    def study_name(self, task: str) -> str:
        return self.study or default_study_name(task, self.model, self.space, self.sampler.name)


def default_study_name(task: str, model: str, space: str, sampler: str) -> str:
    model_name = Path(model.rstrip("/")).name or model
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{task}-{model_name}-{space}-{sampler}")


def parse_max_params(text: str | None) -> tuple[int | None, float | None]:
    """A budget given as text ("50000", "0.5%") as (count, None) or (None, percent)."""
    if text is None:
        return None, None
    raw = text.strip().replace("_", "").replace(",", "")
    match = re.fullmatch(r"(\d+(?:\.\d+)?(?:e\d+)?)(%?)", raw)
    if not match:
        raise UserError(f"--max-params must be a count (e.g. 50000) or a percentage (e.g. 0.5%), got {text!r}")
    value = float(match.group(1))
    if not math.isfinite(value):
        raise UserError(f"--max-params {text!r} is not a finite number")
    if value <= 0:
        raise UserError(f"--max-params must be positive, got {text!r}")
    if match.group(2) and value > 100:
        raise UserError(f"--max-params {text} is more than the whole backbone (at most 100%)")
    return (None, value) if match.group(2) else (int(value), None)


def parse_ref_point(text: str | None) -> tuple[float, float] | None:
    """ "METRIC,PARAMS" as (metric, params), in the study's units."""
    if text is None:
        return None
    try:
        metric, params = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--ref-point must be METRIC,PARAMS (e.g. 0.5,200000), got {text!r}") from None
    if not (math.isfinite(metric) and params > 0):
        raise UserError(f"--ref-point needs a finite metric and a positive parameter count, got {text!r}")
    return (metric, params)
