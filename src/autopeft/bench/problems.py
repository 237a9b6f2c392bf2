"""Benchmark problems for the optimisers, each with its exact maximum hypervolume.

- `synthetic-L` (L = 6, 12, 24): the paper's space on a MiniLM-shaped model with L layers. The
  metric depends on a few dimensions only (the serial and parallel adapter sizes and three
  "important" layers), the situation SAAS priors are built for; the prefix size and the other
  layers only cost parameters. Observations carry Gaussian noise; hypervolume uses the true metric.
  The Pareto front is known by construction: parameters depend on the sizes and the number of
  layers k only, and for given sizes and k the best layers are the k most important ones.
- `realistic-L[-b|-c]` (L = 12, 24): closer to a real search. A handful of relevant layers, each
  with its own affinity for each module kind (serial adapters help most in the top layers, parallel
  ones in the middle, prefix-tuning everywhere a little); module sizes matter on a log scale, with
  diminishing returns inside a layer; below a minimum capacity the score collapses to the floor
  (a configuration too small to learn anything, as a prefix of 2 at one layer on a real task);
  noisier observations. `-b` is a related task (the same relevant layers, other weights and
  affinities: a shifted optimum), `-c` an unrelated one (other layers, other affinities); the
  pairs are the warm-start benchmark's. The front is exact: layers outside the relevant set only
  cost parameters, so it is enumerated over sizes and subsets of relevant layers.
- `pool:PATH.csv`: a table of real evaluations (columns `config` (PEFTConfig JSON), `metric`,
  `params`); optimisers may only pick its configurations, and the maximum is the pool's own front.

Hypervolume is `autopeft.pareto.hypervolume`, on (metric, normalised log-parameters) between the
smallest and the largest parameter counts of the problem, with the worst metric as reference.
Reported values are fractions of the problem's maximum.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from autopeft.errors import UserError
from autopeft.params import ModelDims, peft_params
from autopeft.pareto import hypervolume
from autopeft.space import ConfigError, PEFTConfig, SearchSpace

SYNTHETIC: dict[str, int] = {"synthetic-6": 6, "synthetic-12": 12, "synthetic-24": 24}
REALISTIC: dict[str, tuple[int, str]] = {
    f"realistic-{n}{suffix}": (n, variant)
    for n in (12, 24)
    for suffix, variant in (("", "a"), ("-b", "b"), ("-c", "c"))
}
REALISTIC_NOISE = 0.01  # twice the synthetic noise: a seed's spread at low fidelity
HIDDEN = 384  # MiniLM's hidden size: module sizes 1, 3, 6, ..., 384
NOISE = 0.005  # observation noise of the synthetic metric, about a seed's spread on a GLUE dev set
VOCAB = 30522  # BERT/MiniLM WordPiece vocabulary, for the analytic backbone size


def bert_dims(num_layers: int, hidden: int = HIDDEN) -> ModelDims:
    """A BERT-layout encoder's shape with its analytic parameter counts (no transformers needed).

    Embeddings (words, 512 positions, 2 token types, LayerNorm), per layer: Q, K, V, O projections,
    FFN of 4h, two LayerNorms; a pooler. MiniLM-L6-H384 gives 22,713,216, as its checkpoint.
    """
    ffn = 4 * hidden
    embeddings = (VOCAB + 512 + 2) * hidden + 2 * hidden
    layer = 4 * (hidden * hidden + hidden) + (hidden * ffn + ffn) + (ffn * hidden + hidden) + 4 * hidden
    pooler = hidden * hidden + hidden
    layer_biases = 4 * hidden + ffn + hidden + 2 * hidden
    biases = hidden + num_layers * layer_biases + hidden  # embedding LayerNorm, layers, pooler
    return ModelDims("bert", num_layers, hidden, hidden // 32, ffn, embeddings + num_layers * layer + pooler, biases)


@dataclass(frozen=True)
class SyntheticMetric:
    """metric = base + gain * coverage * capacity^(1/2), in [base, base + gain].

    coverage: summed weights of the important layers the configuration uses (weights sum to 1);
    capacity: log(1 + serial + parallel / 2) / log(1 + 1.5 h), 1 with both adapters at size h.
    """

    hidden: int
    important: tuple[int, ...]
    weights: tuple[float, ...]
    base: float = 0.5
    gain: float = 0.4

    def capacity(self, serial: int, parallel: int) -> float:
        return math.log1p(serial + 0.5 * parallel) / math.log1p(1.5 * self.hidden)

    def value(self, serial: int, parallel: int, coverage: float) -> float:
        return self.base + self.gain * coverage * math.sqrt(self.capacity(serial, parallel))

    def __call__(self, config: PEFTConfig) -> float:
        layers = set(config.shared_layers or ())
        coverage = sum(w for i, w in zip(self.important, self.weights, strict=True) if i in layers)
        return self.value(config.serial, config.parallel, coverage)


@dataclass(frozen=True)
class Problem:
    """A benchmark problem: what an optimiser sees (noisy metric, params) and how it is scored."""

    name: str
    space: SearchSpace
    dims: ModelDims
    truth: Callable[[PEFTConfig], float]  # the metric without noise (hypervolume uses it)
    params: Callable[[PEFTConfig], int]  # the parameter objective
    noise: float  # standard deviation of observation noise
    metric_ref: float  # worst metric: the reference point
    params_low: int  # parameter range of the log scale
    params_high: int
    max_hv: float  # hypervolume of the whole Pareto front
    candidates: tuple[PEFTConfig, ...] | None = None  # pool problems: the only configurations allowed
    # What a configuration that learns nothing scores, told to AutoPEFT as a search tells it its constant
    # prediction; None where unknown (a pool's table does not say).
    floor: float | None = None

    def observe(self, config: PEFTConfig, rng: random.Random) -> float:
        return self.truth(config) + (rng.gauss(0.0, self.noise) if self.noise else 0.0)

    def score(self, params: float) -> float:
        low, high = math.log(self.params_low), math.log(self.params_high)
        return (high - math.log(params)) / (high - low)

    def raw_hypervolume(self, points: Iterable[tuple[float, float]]) -> float:
        """points: (true metric, params) -> hypervolume in (metric, normalised log-params)."""
        return hypervolume(list(points), self.metric_ref, self.params_high, self.params_low)

    def hypervolume(self, points: Iterable[tuple[float, float]]) -> float:
        """Hypervolume as a fraction of the problem's maximum."""
        return self.raw_hypervolume(points) / self.max_hv


def synthetic(name: str) -> Problem:
    """The synthetic problem `synthetic-L` (L = 6, 12, 24 layers, hidden size 384)."""
    if name not in SYNTHETIC:
        raise UserError(f"unknown problem {name!r}; known: {', '.join(KNOWN)} or pool:PATH.csv")
    return make_synthetic(SYNTHETIC[name], HIDDEN, name)


def make_synthetic(num_layers: int, hidden: int = HIDDEN, name: str | None = None) -> Problem:
    """A synthetic problem on the paper's space of a BERT-shaped model; see the module docstring."""
    n = num_layers
    if n < 4:
        raise UserError(f"a synthetic problem needs at least 4 layers, got {n}")
    space = SearchSpace(n, hidden, "paper")
    dims = bert_dims(n, hidden)
    # Top layers matter most (as fine-tuning studies find), plus one in the middle.
    metric = SyntheticMetric(hidden, important=(n - 1, n - 3, n // 2 - 2), weights=(0.5, 0.3, 0.2))
    sizes = space.choices("serial")
    per_layer = {
        (s, p, x): peft_params(
            PEFTConfig(serial=s, parallel=p, prefix=x, serial_layers=(0,), parallel_layers=(0,), prefix_layers=(0,)),
            dims,
        )
        for s, p, x in itertools.product(sizes, repeat=3)
        if s or p or x
    }
    low, high = min(per_layer.values()), max(per_layer.values()) * n
    top = sorted(metric.weights, reverse=True)
    front = [
        (metric.value(s, p, sum(top[:k])), count * k) for (s, p, _), count in per_layer.items() for k in range(1, n + 1)
    ]
    problem = Problem(
        name=name or f"synthetic-{n}-h{hidden}",
        space=space,
        dims=dims,
        truth=metric,
        params=lambda c: peft_params(c, dims),
        noise=NOISE,
        metric_ref=metric.base,
        floor=metric.base,
        params_low=low,
        params_high=high,
        max_hv=1.0,
    )
    return _with_max_hv(problem, front)


@dataclass(frozen=True)
class RealisticMetric:
    """metric = base + gain * (max(capacity - floor, 0) / (1 - floor))^(1/2), in [base, base + gain].

    capacity = sum over relevant layers l the configuration uses of weight_l * min(1, sum over
    modules m of affinity_{l,m} * log(1 + size_m) / log(1 + h)); weights sum to 1. Below `floor`
    the configuration learns nothing and scores `base`.
    """

    hidden: int
    layers: tuple[int, ...]  # relevant layers
    weights: tuple[float, ...]  # one per relevant layer, summing to 1
    affinity: tuple[tuple[float, float, float], ...]  # per relevant layer: (serial, parallel, prefix)
    floor: float = 0.2
    base: float = 0.5
    gain: float = 0.4

    def layer_capacity(self, affinity: tuple[float, float, float], sizes: tuple[int, int, int]) -> float:
        scale = math.log1p(self.hidden)
        return min(1.0, sum(a * math.log1p(s) / scale for a, s in zip(affinity, sizes, strict=True)))

    def value(self, sizes: tuple[int, int, int], used: Iterable[int]) -> float:
        used = set(used)
        capacity = sum(
            w * self.layer_capacity(a, sizes)
            for layer, w, a in zip(self.layers, self.weights, self.affinity, strict=True)
            if layer in used
        )
        return self.base + self.gain * math.sqrt(max(capacity - self.floor, 0.0) / (1.0 - self.floor))

    def __call__(self, config: PEFTConfig) -> float:
        return self.value((config.serial, config.parallel, config.prefix), config.shared_layers or ())


def realistic(name: str) -> Problem:
    """The problem `realistic-L[-b|-c]`; see the module docstring."""
    if name not in REALISTIC:
        raise UserError(f"unknown problem {name!r}; known: {', '.join(KNOWN)} or pool:PATH.csv")
    n, variant = REALISTIC[name]
    return make_realistic(n, variant, HIDDEN, name)


def make_realistic(num_layers: int, variant: str = "a", hidden: int = HIDDEN, name: str | None = None) -> Problem:
    """A `realistic` problem (variant a, b: related, c: unrelated) on a BERT-shaped model."""
    n = num_layers
    if n < 8:
        raise UserError(f"a realistic problem needs at least 8 layers, got {n}")

    def at(fraction: float) -> int:
        return min(n - 1, round(fraction * (n - 1)))

    if variant in ("a", "b"):
        layers = (at(1.0), at(0.9), at(0.75), at(0.6), at(0.4))  # upper and middle layers
        # serial adapters best at the top, parallel in the middle, prefix a little everywhere
        affinity = ((1.0, 0.4, 0.3), (0.9, 0.6, 0.3), (0.6, 0.9, 0.3), (0.4, 1.0, 0.3), (0.3, 0.8, 0.4))
        weights = (0.3, 0.25, 0.2, 0.15, 0.1)
        if variant == "b":  # same layers, the optimum shifted: other weights, parallel and prefix stronger
            weights = (0.15, 0.2, 0.3, 0.25, 0.1)
            affinity = ((0.6, 0.7, 0.5), (0.5, 0.9, 0.5), (0.4, 1.0, 0.4), (0.3, 0.9, 0.5), (0.3, 0.6, 0.6))
    elif variant == "c":  # unrelated: lower layers, prefix-tuning best
        layers = (at(0.0), at(0.15), at(0.3), at(0.5))
        affinity = ((0.3, 0.2, 1.0), (0.4, 0.3, 0.9), (0.5, 0.6, 0.7), (0.9, 0.3, 0.4))
        weights = (0.35, 0.3, 0.2, 0.15)
    else:
        raise UserError(f"unknown realistic variant {variant!r}; known: a, b, c")
    metric = RealisticMetric(hidden, layers, weights, affinity)
    space = SearchSpace(n, hidden, "paper")
    dims = bert_dims(n, hidden)
    sizes = space.choices("serial")
    relevant = sorted(set(layers))
    subsets = [c for k in range(1, len(relevant) + 1) for c in itertools.combinations(relevant, k)]
    per_layer = {}
    front = []
    for s, p, x in itertools.product(sizes, repeat=3):
        if not (s or p or x):
            continue
        one = PEFTConfig(serial=s, parallel=p, prefix=x, serial_layers=(0,), parallel_layers=(0,), prefix_layers=(0,))
        per_layer[s, p, x] = peft_params(one, dims)
        front += [(metric.value((s, p, x), used), per_layer[s, p, x] * len(used)) for used in subsets]
    problem = Problem(
        name=name or f"realistic-{n}{variant}-h{hidden}",
        space=space,
        dims=dims,
        truth=metric,
        params=lambda c: peft_params(c, dims),
        noise=REALISTIC_NOISE,
        metric_ref=metric.base,
        floor=metric.base,
        params_low=min(per_layer.values()),
        params_high=max(per_layer.values()) * n,
        max_hv=1.0,
    )
    return _with_max_hv(problem, front)


def _with_max_hv(problem: Problem, points: Sequence[tuple[float, float]]) -> Problem:
    max_hv = problem.raw_hypervolume(points)
    if not max_hv > 0:
        raise UserError(f"problem {problem.name}: no configuration beats the worst metric; nothing to optimise")
    return replace(problem, max_hv=max_hv)


def pool(path: str | Path, dims: ModelDims, kind: str = "paper", floor: float | None = None) -> Problem:
    """A pool problem from a CSV of real evaluations on a model of shape `dims`.

    Required columns: `config` (PEFTConfig JSON), `metric` (higher is better), `params` (PEFT
    parameters; checked against the exact count). A configuration listed more than once (several
    seeds) gets its mean metric. Other columns are ignored. `floor`: what learning nothing scores on the
    pool's task (a constant prediction), told to AutoPEFT as a search tells it; the table cannot say.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"pool file {str(path)!r} does not exist")
    space = SearchSpace(dims.num_layers, dims.hidden_size, kind)
    metrics: dict[PEFTConfig, list[float]] = {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"config", "metric", "params"} - set(reader.fieldnames or ())
        if missing:
            raise UserError(f"pool file {str(path)!r} lacks column(s): {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            try:
                config = PEFTConfig.from_dict(json.loads(row["config"]))
                space.check(config)
                metric, params = float(row["metric"]), int(float(row["params"]))
            except (ConfigError, ValueError, TypeError) as err:
                raise UserError(f"{path}:{line}: {err}") from None
            if params != peft_params(config, dims):
                raise UserError(
                    f"{path}:{line}: params {params} is not the exact count {peft_params(config, dims)} of "
                    f"{config.describe()} on this model (was the pool made with another model?)"
                )
            if not math.isfinite(metric):
                raise UserError(f"{path}:{line}: metric is not a finite number")
            metrics.setdefault(config, []).append(metric)
    if len(metrics) < 2:
        raise UserError(f"pool file {str(path)!r} needs at least 2 distinct configurations, has {len(metrics)}")
    mean = {c: sum(v) / len(v) for c, v in metrics.items()}
    counts = {c: peft_params(c, dims) for c in mean}
    low, high = min(counts.values()), max(counts.values())
    problem = Problem(
        name=f"pool:{path.name}" + (f"+floor{floor:g}" if floor is not None else ""),
        space=space,
        dims=dims,
        truth=mean.__getitem__,
        params=counts.__getitem__,
        noise=0.0,
        metric_ref=min(mean.values()),
        params_low=low,
        params_high=high if high > low else low + 1,
        max_hv=1.0,
        candidates=tuple(mean),
        floor=floor,
    )
    return _with_max_hv(problem, [(mean[c], counts[c]) for c in mean])


KNOWN: tuple[str, ...] = (*SYNTHETIC, *REALISTIC)


def problem_factory(
    spec: str, model: str = "minilm", space: str = "paper", floor: float | None = None
) -> Callable[[], Problem]:
    """A picklable function that builds the problem `spec` names (`synthetic-L`, `realistic-L[-b|-c]`
    or `pool:PATH.csv`, with `floor` if given); worker processes rebuild it with this."""
    import functools

    if spec.startswith("pool:"):
        from autopeft import models

        path = Path(spec[len("pool:") :])
        if not path.is_file():  # before loading the model's config
            raise UserError(f"pool file {str(path)!r} does not exist")
        return functools.partial(pool, path, models.dims_of(model), space, floor)
    if floor is not None:
        raise UserError(f"a floor is given for pool problems only; {spec} knows its own")
    if spec in REALISTIC:
        return functools.partial(realistic, spec)
    if spec not in SYNTHETIC:
        raise UserError(f"unknown problem {spec!r}; known: {', '.join(KNOWN)} or pool:PATH.csv")
    return functools.partial(synthetic, spec)
