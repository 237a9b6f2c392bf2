"""`AutoPEFTSampler`: multi-objective Bayesian optimisation of PEFT configurations as an Optuna sampler.

A suggestion is made in three layers, as in botorch:
1. surrogate: a GP on the task metric of the completed trials (`surrogate.fit_surrogate`);
2. acquisition: qLogNEHVI over (metric, exact parameter score), running and enqueued trials
   pending (`acquisition.build_acquisition`);
3. acquisition optimisation: local search over one-change neighbours from the Pareto set and
   random allowed configurations, or exhaustive scoring of a finite candidate set
   (`optimize.local_search`, `optimize.best_of`).

The study's objectives are `values[0]` = the task metric (either direction) and, in a
two-objective study, `values[1]` = the PEFT parameter count, minimised. The sampler never reads
`values[1]`: it computes the exact count from the configuration. Everything is derived from the
study at each suggestion, so a study resumed with a new sampler object continues where it was.
"""

from __future__ import annotations

import logging
import math
import random
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial

from autopeft.errors import UserError
from autopeft.optim import warm as warm_start
from autopeft.optim.bridge import optuna_distributions, params_from_config
from autopeft.optim.budget import Budget
from autopeft.optim.history import History, fixed_params, trial_rng, trial_seed
from autopeft.optim.surrogate import SURROGATES, NutsOptions
from autopeft.params import ModelDims, ParamCount, param_count
from autopeft.pareto import pareto_indices
from autopeft.space import PEFTConfig, SearchSpace

if TYPE_CHECKING:
    from autopeft.optim.optimize import Score

logger = logging.getLogger(__name__)

Source = tuple[list[PEFTConfig], list[float]]  # a warm start's configurations and metrics (higher is better)
STRATIFIED_DRAWS = 64  # random configurations per stratified start, the closest to its target score kept


@dataclass(frozen=True)
class AutoPEFTOptions:
    """Options of `AutoPEFTSampler`; validated on construction."""

    surrogate: str = "saas"  # one of surrogate.SURROGATES
    n_startup_trials: int = 10  # uniform random configurations before the first model
    seed: int | None = None  # None: not reproducible
    max_params: int | None = None  # hard cap on PEFT parameters
    max_percent: float | None = None  # or the cap as a percentage of the backbone's parameters
    ref_point: tuple[float, float] | None = None  # (metric, PEFT params) in the study's units; default below
    # Rank -> normal-quantile transform of the metric before the GP, as the paper. Off by default: it
    # spreads the noise among near-equal metrics (configurations that do not learn) over the whole
    # normal range; on synthetic-12 (saas-map, 5 seeds) it lowered the median hypervolume at 40 trials
    # from 0.93 to 0.89.
    copula: bool = False
    params_modelled: bool = False  # ablation: a second GP on the parameter score, as the original code
    candidates: tuple[PEFTConfig, ...] | None = None  # propose only these (a pool of precomputed configurations)
    nuts: NutsOptions = field(default_factory=NutsOptions)
    mc_samples: int = 128  # QMC samples of the posterior, shared among NUTS samples
    random_starts: int = 8  # local-search starts drawn at random
    pareto_starts: int = 8  # local-search starts from the current Pareto set, at most
    # The three defaults below won the 24-layer problems (issue 19, docs/BENCHMARKS.md): a uniform
    # random start at 24 layers holds ~12 layers and mid sizes only, a MAP SAAS fit of it is nearly
    # flat (everything noise), and the smallest configuration then "scores" the mean at the best
    # parameter score: 15-28 of 30 trials went to prefix-1-at-one-layer configurations scoring the floor.
    stratified_start: bool = True  # random start spread over the parameter axis (`_stratified`), not uniform
    params_feature: bool = True  # the exact parameter score as one more GP input: "too small learns nothing"
    map_ensemble: int = 4  # saas-map: MAP fits at this many global shrinkages, averaged (1: one fit) ...
    # ... while the study has fewer completed trials than this many per GP input; one fit from there on
    # (a quarter of the cost). The flat MAP mode is a failure of few points in many dimensions: at 24
    # layers the ensemble holds for the first 56 trials. On the pool (9 dimensions; 5 seeds, median
    # hypervolume at 40): ensemble throughout 0.959, one fit throughout 0.968, this rule 0.964.
    ensemble_per_input: float = 2.0
    # What learning nothing scores (e.g. a constant prediction), in the study's units. Given, the acquisition
    # is multiplied by the chance that a configuration of its size learns at all (`learning`): hypervolume
    # on log-parameters pulls to the small end, where each new layer pattern looks new to the GP.
    floor: float | None = None

    def __post_init__(self) -> None:
        if self.surrogate not in SURROGATES:
            raise UserError(f"unknown surrogate {self.surrogate!r}; known: {', '.join(SURROGATES)}")
        if self.map_ensemble < 1:
            raise UserError(f"map_ensemble must be at least 1, got {self.map_ensemble}")
        for name in ("n_startup_trials", "random_starts", "pareto_starts"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.n_startup_trials < 2:
            raise UserError(f"n_startup_trials must be at least 2 (a GP needs data), got {self.n_startup_trials}")
        if self.mc_samples < 1:
            raise UserError(f"mc_samples must be positive, got {self.mc_samples}")
        if self.floor is not None and not math.isfinite(self.floor):
            raise UserError(f"floor must be a finite number, got {self.floor}")
        if self.ref_point is not None and len(self.ref_point) != 2:
            raise UserError(f"ref_point is (metric, params), got {self.ref_point!r}")
        if self.candidates is not None:
            object.__setattr__(self, "candidates", tuple(dict.fromkeys(self.candidates)))


class FullSpaceSampler(BaseSampler):
    """An Optuna sampler that proposes every dimension of the PEFT space at once, from `suggest`.

    The base of AutoPEFT and the baselines (`baselines.py`), so that all of them treat enqueued
    trials, parameters outside the space and a finite candidate set alike.

    Args:
        space: the search space; its dimensions are the trial params (`bridge.optuna_distributions`).
        budget: the allowed configurations.
        seed: None: not reproducible.
        candidates: propose only these (those the budget allows); None: any allowed configuration.
    """

    def __init__(
        self, space: SearchSpace, budget: Budget, seed: int | None, candidates: Sequence[PEFTConfig] | None = None
    ) -> None:
        self.space = space
        self.budget = budget
        self.seed = seed
        self.candidates = _allowed_candidates(budget, candidates)
        self._distributions = optuna_distributions(space)
        self._independent = RandomSampler(seed=seed)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self._distributions)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space or set(self._distributions) <= set(fixed_params(trial)):
            return {}  # an enqueued trial: its configuration is already fixed
        return params_from_config(self.space, self.suggest(study, trial))

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        # Only parameters outside the PEFT space (or of a partly enqueued trial) come here.
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    def reseed_rng(self) -> None:
        # Suggestions draw from per-trial streams (`history.trial_rng`); only the fallback has state.
        self._independent.reseed_rng()

    def suggest(self, study: Study, trial: FrozenTrial) -> PEFTConfig:
        """The configuration for `trial`."""
        raise NotImplementedError

    def _random(self, rng: random.Random, taken: set[PEFTConfig]) -> PEFTConfig:
        """Uniform over the allowed configurations (or candidates) not in `taken`; any candidate if all are."""
        if self.candidates is None:
            return self.budget.sample(rng, exclude=taken)
        free = [c for c in self.candidates if c not in taken]
        return rng.choice(free or list(self.candidates))


class AutoPEFTSampler(FullSpaceSampler):
    """Multi-objective BO of PEFT configurations (Zhou et al., TACL 2024), exact parameter objective.

    Suggestions are always valid configurations of `space` within the budget, and never one that
    another trial of the study already holds (completed, failed, running or enqueued) unless every
    allowed configuration is taken. Failed and pruned trials do not enter the model. The reference
    point is, by default, the worst metric observed and a little more than the largest allowed
    parameter count (`acquisition.default_ref_point`); `ref_point=(metric, params)` sets it in the
    study's own units.

    Args:
        space: the search space; its dimensions are the trial params (`bridge.optuna_distributions`).
        dims: the model's shape, for exact parameter counts.
        num_labels: labels of the task head (for `param_count`; the objective counts PEFT parameters only).
        options: `AutoPEFTOptions`; keyword arguments override its fields.
    """

    def __init__(
        self,
        space: SearchSpace,
        dims: ModelDims,
        num_labels: int = 2,
        options: AutoPEFTOptions | None = None,
        **overrides: Any,
    ) -> None:
        options = replace(options or AutoPEFTOptions(), **overrides)
        budget = Budget.of(space, dims, options.max_params, options.max_percent)
        super().__init__(space, budget, options.seed, options.candidates)
        self.dims = dims
        self.num_labels = num_labels
        self.options = options

    def param_count(self, config: PEFTConfig) -> ParamCount:
        return param_count(config, self.dims, self.num_labels)

    # --- suggestions --------------------------------------------------------------------------

    def suggest(self, study: Study, trial: FrozenTrial) -> PEFTConfig:
        """The configuration for `trial`: random during the start, then Bayesian optimisation.

        A model-based suggestion takes seconds, and another worker may take the same configuration
        meanwhile (both saw the same study): if it did, propose again from the study as it is now,
        where that configuration is pending. (`make demo` with two workers once spent a trial so.)
        """
        _check_directions(study)
        config = self._propose(study, trial)
        if config in History.of(study, self.space, trial).seen:
            config = self._propose(study, trial)
        return config

    def _propose(self, study: Study, trial: FrozenTrial) -> PEFTConfig:
        history = History.of(study, self.space, trial)
        rng = trial_rng(self.options.seed, trial.number)
        taken = history.seen | set(history.pending)
        source = warm_start.observations(study, self.space)  # another task's trials, if warm-started
        startup = warm_start.WARM_STARTUP if source[0] else self.options.n_startup_trials
        if len(history.configs) < startup:
            if self.options.stratified_start and self.candidates is None:
                return self._stratified(rng, taken, trial.number)
            return self._random(rng, taken)
        from botorch.exceptions.errors import ModelFittingError

        seed = trial_seed(self.options.seed, trial.number, "bo")
        if seed is None:  # unseeded: fresh entropy, from the trial's (then unseeded) stream
            seed = rng.getrandbits(31)
        try:
            config = self._optimise(history, source, rng, taken, seed, multi=len(study.directions) == 2)
        except (RuntimeError, ModelFittingError) as err:  # numerical failure of a fit: do not stop the study
            logger.warning("trial %d: Bayesian optimisation failed (%s); sampling at random", trial.number, err)
            config = None
        return config if config is not None else self._random(rng, taken)

    def _optimise(
        self, history: History, source: Source, rng: random.Random, taken: set[PEFTConfig], seed: int, multi: bool
    ) -> PEFTConfig | None:
        """Fit, build the acquisition function, maximise it; None if nothing new may be proposed."""
        import torch

        from autopeft.optim.optimize import acquisition_score, best_of, local_search

        with torch.random.fork_rng(), warnings.catch_warnings():
            torch.manual_seed(seed)  # MAP fits' random restarts; the caller's torch stream is left as it was
            # Expected with near-duplicate configurations, and from linear_operator internals.
            warnings.filterwarnings("ignore", message=".*not p.d., added jitter.*")
            warnings.filterwarnings("ignore", message=".*Sparse invariant checks.*")
            start = time.perf_counter()
            acqf, encode = self._acquisition(history, source, seed, multi)
            fitted = time.perf_counter()
            scorer = acquisition_score(acqf, self.space, encode=encode)
            if multi and self.options.floor is not None:
                scorer = self._discounted(scorer, history)
            if self.candidates is not None:
                best = best_of(scorer, [c for c in self.candidates if c not in taken])
            else:
                starts = self._starts(history, rng, taken)
                best = local_search(scorer, starts, self.space.neighbours, self.budget.allows, exclude=taken)
            logger.debug(
                "%d trials: fit and acquisition %.1f s, its optimisation %.1f s",
                len(history.configs),
                fitted - start,
                time.perf_counter() - fitted,
            )
            return best

    def _discounted(self, scorer: Score, history: History) -> Score:
        """`scorer` (log acquisition values) plus the log chance that a configuration of that size learns,
        fitted on the completed trials (`learning.fit_learn_chance`); `scorer` itself if it cannot be fitted."""
        from autopeft.optim.learning import fit_learn_chance

        size_score = self.budget.config_score
        floor = history.sign * self.options.floor  # higher is better, as the metrics
        chance = fit_learn_chance([size_score(c) for c in history.configs], history.metrics, floor)
        if chance is None:
            return scorer

        def score(configs: Sequence[PEFTConfig]) -> list[float]:
            return [v + chance.log_prob(size_score(c)) for v, c in zip(scorer(configs), configs, strict=True)]

        return score

    def _encoder(self, task: float | None = None):
        """config -> the GP's input: `SearchSpace.to_vector` (d numbers), then the parameter score clipped to
        [0, 1] if `params_feature`, then the task feature if `task` is given (a warm start)."""

        def encode(config: PEFTConfig) -> list[float]:
            x = self.space.to_vector(config)
            if self.options.params_feature:
                x.append(min(max(self.budget.config_score(config), 0.0), 1.0))
            if task is not None:
                x.append(task)
            return x

        return encode

    def _acquisition(self, history: History, source: Source, seed: int, multi: bool):
        """The acquisition function of the completed trials (see the module docstring) and the encoder of
        the configurations it scores."""
        import torch
        from botorch.utils.transforms import is_ensemble

        from autopeft.optim.acquisition import ParamsScore, build_acquisition, default_ref_point, params_objective
        from autopeft.optim.surrogate import Copula, fit_surrogate

        opts = self.options
        start = time.perf_counter()
        source_configs, source_metrics = source
        warm = bool(source_configs)
        encode = self._encoder(task=1.0 if warm else None)
        X = torch.tensor([encode(c) for c in history.configs], dtype=torch.float64)  # n x d (+1 with a warm start)
        metric = torch.tensor(history.metrics, dtype=torch.float64)  # n, higher is better
        transform = Copula(metric) if opts.copula else _identity
        if warm:
            transform = _Standardise(transform(metric), after=transform)
        y = transform(metric)  # n
        score_fn = ParamsScore(self.budget)
        score = score_fn(X)  # n
        X_fit, y_fit, score_fit = X, y, score
        if warm:  # the source task's trials, standardised on their own, task feature 0
            encode_source = self._encoder(task=0.0)
            X_source = torch.tensor([encode_source(c) for c in source_configs], dtype=torch.float64)  # s x (d+1)
            y_source = torch.tensor(source_metrics, dtype=torch.float64)  # s
            y_source = _Standardise(y_source)(y_source)
            X_fit, y_fit = torch.cat([X, X_source]), torch.cat([y, y_source])
            score_fit = score_fn(X_fit)
        taus = opts.map_ensemble if len(history.configs) < opts.ensemble_per_input * X_fit.shape[-1] else 1
        if multi and opts.params_modelled:
            Y = torch.stack([y_fit, score_fit], -1)  # (n + s) x 2
            model = fit_surrogate(X_fit, Y, opts.surrogate, opts.nuts, seed, taus)
            objective = None
        else:
            model = fit_surrogate(X_fit, y_fit.unsqueeze(-1), opts.surrogate, opts.nuts, seed, taus)
            objective = params_objective(score_fn, ensemble=is_ensemble(model)) if multi else None
        logger.debug("%d trials: %s surrogate fitted in %.1f s", len(y), opts.surrogate, time.perf_counter() - start)
        ref = None
        if multi:
            ref = default_ref_point(y)
            if opts.ref_point is not None:
                ref_metric = transform(torch.tensor([history.sign * opts.ref_point[0]], dtype=torch.float64))
                ref = [float(ref_metric[0]), self.budget.score(opts.ref_point[1])]
        X_pending = torch.tensor([encode(c) for c in history.pending], dtype=torch.float64).reshape(
            -1, X.shape[-1]
        )  # p x d
        acqf = build_acquisition(
            model, X, ref_point=ref, objective=objective, X_pending=X_pending, mc_samples=opts.mc_samples, seed=seed
        )
        return acqf, encode

    def _stratified(self, rng: random.Random, taken: set[PEFTConfig], number: int) -> PEFTConfig:
        """A random start spread over the parameter axis: trial `number` takes one of `n_startup_trials`
        equal strata of the parameter score (in an order fixed by the seed), a target score at random in
        it, and the closest of `STRATIFIED_DRAWS` draws with a uniform number of layers and uniform sizes.

        Uniform draws hold about half the layers and mid sizes: at 24 layers their scores span about
        0.15-0.6, leaving the small end of the front, where a configuration may be too small to learn
        anything, unobserved; these span about 0.05-0.7 (the top strata, one layer with small
        modules, are rarely among the draws).
        """
        n = self.options.n_startup_trials
        order = list(range(n))
        random.Random(trial_seed(self.options.seed, 0, "strata")).shuffle(order)
        stratum = order[number % n]
        target = (stratum + rng.random()) / n
        best, gap = None, float("inf")
        num_layers = self.space.num_layers
        for _ in range(STRATIFIED_DRAWS):
            k = rng.randint(1, num_layers)
            layers = sorted(rng.sample(range(num_layers), k))
            sizes = {m: rng.choice(self.space.choices(m)) for m in self.space.modules}
            if not any(sizes.values()):
                continue
            layout = self.space.layout
            x = [0.0] * self.space.dim
            for m, v in sizes.items():
                x[layout.size(m)] = layout.dimensions[layout.size(m)].encode(v)
            for mask in layout.masks:
                for i in layers:
                    x[mask.coords[i]] = 1.0
            config = self.space.from_vector(x)
            if config in taken or not self.budget.allows(config):
                continue
            g = abs(self.budget.config_score(config) - target)
            if g < gap:
                best, gap = config, g
        return best if best is not None else self._random(rng, taken)

    def _starts(self, history: History, rng: random.Random, taken: set[PEFTConfig]) -> list[PEFTConfig]:
        """The current Pareto set (evenly thinned to `pareto_starts`) and `random_starts` random allowed ones."""
        points = [(m, self.budget.params(c)) for m, c in zip(history.metrics, history.configs, strict=True)]
        front = [i for i in pareto_indices(points) if self.budget.allows(history.configs[i])]  # by params ascending
        k = self.options.pareto_starts
        if len(front) > k:
            front = [front[round(j * (len(front) - 1) / max(k - 1, 1))] for j in range(k)]
        starts = [history.configs[i] for i in front]
        starts += [self.budget.sample(rng, exclude=taken) for _ in range(self.options.random_starts)]
        return starts


def _allowed_candidates(budget: Budget, candidates: Sequence[PEFTConfig] | None) -> tuple[PEFTConfig, ...] | None:
    if candidates is None:
        return None
    allowed = tuple(c for c in dict.fromkeys(candidates) if budget.allows(c))
    if not allowed:
        raise UserError("no candidate configuration is valid and within the budget")
    return allowed


def _check_directions(study: Study) -> None:
    directions = study.directions
    if len(directions) > 2 or (len(directions) == 2 and directions[1] != StudyDirection.MINIMIZE):
        raise UserError(
            "AutoPEFTSampler needs a study with directions [metric] or [metric, 'minimize' PEFT parameters], "
            f"got {[d.name.lower() for d in directions]}"
        )


def _identity(values):
    return values


class _Standardise:
    """v -> (after(v) - mean) / std of `reference` (already through `after`): a monotone map per task."""

    def __init__(self, reference, after=_identity) -> None:
        self.after = after
        self.mean = float(reference.mean())
        self.std = float(reference.std()) if reference.numel() > 1 else 1.0
        if not self.std > 1e-9:
            self.std = 1.0

    def __call__(self, values):
        return (self.after(values) - self.mean) / self.std
