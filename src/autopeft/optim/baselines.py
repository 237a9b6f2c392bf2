"""Every optimiser by name, ours and the baselines, each proposing only allowed configurations.

How each keeps to valid, in-budget configurations:
- `autopeft`, `autopeft-params-modelled`, `autopeft-plain-gp`: by construction (random starts by
  rejection sampling, local search only through allowed neighbours).
- `random` (`RandomConfigSampler`): uniform over the allowed configurations not yet taken, by
  rejection sampling (the same draws as AutoPEFT's random start for the same seed).
- `tpe` (multivariate), `nsga2`, `gp` (Optuna's GPSampler): Optuna's own sampler proposes all the
  dimensions; `ProjectedSampler` repairs an invalid or over-budget proposal (`Budget.repair`: turn on
  a module or a layer, then shrink by random one-change moves until it fits) and stores the repaired
  configuration as the trial's params, so the inner sampler learns from what was evaluated.
On a finite candidate set (a pool of precomputed configurations), the AutoPEFT samplers score every
unused candidate, `random` draws uniformly from the unused ones, and the Optuna samplers' proposals
are snapped to the nearest unused candidate (fewest differing dimensions, then closest sizes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from autopeft.errors import UserError
from autopeft.names import ABLATIONS, BASELINES, SAMPLERS  # noqa: F401  (re-exported)
from autopeft.optim.bridge import vector_from_params
from autopeft.optim.budget import Budget
from autopeft.optim.history import History, trial_rng
from autopeft.optim.sampler import AutoPEFTOptions, AutoPEFTSampler, FullSpaceSampler
from autopeft.params import ModelDims
from autopeft.space import PEFTConfig, SearchSpace

BASELINE_STARTUP = 10  # random trials before TPE and GPSampler model, as AutoPEFT's default
NSGA2_POPULATION = 10  # Optuna's default of 50 would leave NSGA-II random for a 40-trial budget


class RandomConfigSampler(FullSpaceSampler):
    """Random search: uniform over allowed configurations not already taken (or over unused candidates)."""

    def suggest(self, study: Study, trial: FrozenTrial) -> PEFTConfig:
        history = History.of(study, self.space, trial)
        return self._random(trial_rng(self.seed, trial.number), history.seen | set(history.pending))


class ProjectedSampler(FullSpaceSampler):
    """An Optuna sampler whose proposals are projected onto the allowed configurations.

    The inner sampler proposes the dimensions (relative sampling where it has a model, independent
    sampling otherwise); the proposal is repaired into the budget, or snapped to the nearest unused
    candidate when a candidate set is given. Trial hooks are forwarded (NSGA-II keeps its generations there).
    """

    def __init__(
        self,
        inner: BaseSampler,
        space: SearchSpace,
        budget: Budget,
        seed: int | None,
        candidates: Sequence[PEFTConfig] | None = None,
    ) -> None:
        super().__init__(space, budget, seed, candidates)
        self.inner = inner

    def suggest(self, study: Study, trial: FrozenTrial) -> PEFTConfig:
        inner_space = self.inner.infer_relative_search_space(study, trial)
        params = dict(self.inner.sample_relative(study, trial, inner_space)) if inner_space else {}
        for name, distribution in self._distributions.items():
            if name not in params:
                params[name] = self.inner.sample_independent(study, trial, name, distribution)
        x = vector_from_params(self.space, params)
        rng = trial_rng(self.seed, trial.number, "repair")
        if self.candidates is None:
            return self.budget.repair(x, rng)
        history = History.of(study, self.space, trial)
        taken = history.seen | set(history.pending)
        free = [c for c in self.candidates if c not in taken] or list(self.candidates)
        return min(free, key=lambda c: _distance(self.space.to_vector(c), x))

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        super().reseed_rng()
        self.inner.reseed_rng()


def _distance(a: Sequence[float], b: Sequence[float]) -> tuple[int, float]:
    """(differing dimensions, summed encoded difference) between two encoded configurations."""
    diffs = [abs(u - v) for u, v in zip(a, b, strict=True)]
    return sum(d > 1e-9 for d in diffs), sum(diffs)


def _optuna_sampler(name: str, seed: int | None, opts: dict[str, Any]) -> BaseSampler:
    from optuna.samplers import GPSampler, NSGAIISampler, TPESampler

    makers: dict[str, Callable[..., BaseSampler]] = {
        "tpe": lambda **kw: TPESampler(multivariate=True, seed=seed, **{"n_startup_trials": BASELINE_STARTUP, **kw}),
        "nsga2": lambda **kw: NSGAIISampler(seed=seed, **{"population_size": NSGA2_POPULATION, **kw}),
        "gp": lambda **kw: GPSampler(seed=seed, **{"n_startup_trials": BASELINE_STARTUP, **kw}),
    }
    try:
        return makers[name](**opts)
    except TypeError as err:
        raise UserError(f"bad option for sampler {name!r}: {err}") from None


def make_sampler(
    name: str,
    space: SearchSpace,
    dims: ModelDims,
    num_labels: int = 2,
    seed: int | None = None,
    max_params: int | None = None,
    *,
    max_percent: float | None = None,
    candidates: Sequence[PEFTConfig] | None = None,
    **opts: Any,
) -> BaseSampler:
    """An optimiser by name (`SAMPLERS`); every one proposes only valid configurations within the budget.

    `opts` go to `AutoPEFTOptions` for the AutoPEFT samplers (e.g. surrogate="saas-map",
    n_startup_trials=10, copula=False) and to the Optuna constructor for tpe, nsga2 and gp (e.g.
    population_size=20). `candidates` restricts proposals to a finite set (see the module docstring).
    """
    if name not in SAMPLERS:
        raise UserError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")
    budget = Budget.of(space, dims, max_params, max_percent)
    if name.startswith("autopeft"):
        if name == "autopeft-params-modelled":
            opts = {**opts, "params_modelled": True}
        elif name == "autopeft-plain-gp":
            opts = {**opts, "surrogate": "gp"}
        try:
            options = AutoPEFTOptions(
                seed=seed,
                max_params=budget.max_params,
                candidates=tuple(candidates) if candidates is not None else None,
                **opts,
            )
        except TypeError as err:
            raise UserError(f"bad option for sampler {name!r}: {err}") from None
        return AutoPEFTSampler(space, dims, num_labels, options)
    if name == "random":
        if opts:
            raise UserError(f"sampler 'random' takes no options, got {', '.join(opts)}")
        return RandomConfigSampler(space, budget, seed, candidates)
    return ProjectedSampler(_optuna_sampler(name, seed, opts), space, budget, seed, candidates)
