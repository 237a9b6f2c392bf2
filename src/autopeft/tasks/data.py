"""A task's examples and the AutoPEFT protocol that decides which of them train and which score.

`TaskData` holds the parsed splits of one task (GLUE or the user's files) with its label set and
metric family. `TaskData.plan` applies the protocol (Zhou et al., TACL 2024, Sec. 4):

- mode "search": a seeded, stratified slice of the training set (`heldout_fraction`) is held out
  and scores every trial; the rest is the training pool. The dev set is never touched, so the
  final numbers on dev are not selected on.
- mode "final": train on the whole training set, score on dev (and, for MNLI, also on the
  mismatched dev set).

Fidelity then shrinks the training pool (`max_train_samples` or `train_fraction`) and the scoring
set (`max_eval_samples`), again by seeded stratified subsampling, so every trial of a search sees
the same examples and differs only in its configuration and training seed. The held-out slice, the
training subset and the scoring subset each draw from their own stream of `split_seed`, so changing
one knob never reshuffles the others, and a smaller training subset is (up to rounding) part of a
larger one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from autopeft.errors import UserError
from autopeft.names import MODES
from autopeft.tasks import metrics

REGRESSION_STRATA = 10  # regression labels are stratified by their deciles


@dataclass(frozen=True, eq=False)
class Split:
    """One split's examples. Identity-hashed: the token cache keys on the object, not its content.

    labels: class ids (`int`, classification) or scores (`float`, regression), one per example.
    """

    name: str
    text_a: tuple[str, ...]
    text_b: tuple[str, ...] | None
    labels: tuple[int, ...] | tuple[float, ...]
    skipped_rows: int = 0  # malformed rows left out while parsing (only ever non-zero for GLUE's QQP)

    def __post_init__(self) -> None:
        if self.text_b is not None and len(self.text_b) != len(self.text_a):
            raise ValueError(f"split {self.name}: {len(self.text_a)} first and {len(self.text_b)} second texts")
        if len(self.labels) != len(self.text_a):
            raise ValueError(f"split {self.name}: {len(self.text_a)} texts and {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.text_a)


@dataclass(frozen=True)
class View:
    """A subset of one split: which split, and which of its rows (sorted indices)."""

    split: str
    indices: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class Plan:
    """What one trial trains on and what it is scored on.

    evals maps a metric suffix to a view: "" is the headline evaluation; "mm" is MNLI's mismatched
    dev set in final mode, reported as e.g. `accuracy_mm`.
    """

    mode: str
    train: View
    evals: dict[str, View]
    # A stratified part of the headline view for evaluations within an epoch (checkpoints that early
    # stopping reads, which a one-epoch trial would otherwise pay in full scoring passes); None: all of it.
    interim: View | None = None


@dataclass(frozen=True)
class TaskData:
    """A task ready to train on: its splits, label set and metric family."""

    name: str
    metric: str  # metric family, see `autopeft.tasks.metrics`
    label_names: tuple[str, ...] | None  # class names by id; None for regression
    train: Split
    dev: Split | None = None
    extra_evals: dict[str, Split] = field(default_factory=dict)  # suffix -> split, e.g. {"mm": dev_mismatched}
    source: str = ""  # where the examples came from, for reports

    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def num_labels(self) -> int:
        """Outputs of the task head: 1 for regression (the head then trains with MSE)."""
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def metric_name(self) -> str:
        return metrics.headline_name(self.metric)

    @property
    def is_pair(self) -> bool:
        return self.train.text_b is not None

    def split(self, name: str) -> Split:
        for split in (self.train, self.dev, *self.extra_evals.values()):
            if split is not None and split.name == name:
                return split
        raise KeyError(f"task {self.name} has no split {name!r}")

    def score(self, predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
        """GLUE metrics of the task; user classification also gets macro-F1."""
        out = metrics.compute(self.metric, predictions, references)
        if self.source.startswith("files") and not self.is_regression:
            out["f1_macro"] = metrics.macro_f1(predictions, references)
        return out

    def constant_prediction_scores(self, plan: Plan | None = None) -> dict[str, float]:
        """Metrics of a model that ignores its input and predicts its training examples' most frequent
        class (regression: their mean score, whose correlations count as 0): the floor a trained model
        must rise above. A trained run that scores exactly this has most likely learnt nothing.

        plan: train on its training subset and score on its headline view (default: all of train, dev).
        """
        train_labels = np.asarray(self.train.labels)
        if plan is None:
            if self.dev is None:
                raise ValueError(f"task {self.name} has no dev split")
            references = np.asarray(self.dev.labels)
        else:
            scored = plan.evals[""]
            train_labels = train_labels[plan.train.indices]
            references = np.asarray(self.split(scored.split).labels)[scored.indices]
        if self.is_regression:
            constant = train_labels.mean()
        else:
            classes, counts = np.unique(train_labels, return_counts=True)
            constant = classes[np.argmax(counts)]
        return self.score(np.full(len(references), constant, dtype=references.dtype), references)

    def prior_outputs(self, plan: Plan) -> np.ndarray:
        """Head outputs that make the constant prediction of `plan`'s training examples: their mean score
        (regression), or their classes' log frequencies, add-one smoothed so that an absent class stays finite."""
        labels = np.asarray(self.split(plan.train.split).labels)[plan.train.indices]
        if self.is_regression:
            return np.array([labels.mean()], dtype=np.float32)
        counts = np.bincount(labels.astype(int), minlength=self.num_labels) + 1.0
        return np.log(counts / counts.sum()).astype(np.float32)

    def plan(
        self,
        mode: str,
        *,
        heldout_fraction: float = 0.1,
        split_seed: int = 0,
        max_train_samples: int | None = None,
        train_fraction: float | None = None,
        max_eval_samples: int | None = None,
        interim_fraction: float | None = None,
    ) -> Plan:
        """The protocol's training and scoring views for `mode` (see the module docstring).

        Views may be empty (a tiny training set leaves nothing after the held-out slice); the engine
        fails such a trial with a recorded reason.
        """
        if mode not in MODES:
            raise UserError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        n = len(self.train)
        everything = np.arange(n)
        # one independent stream per purpose: held-out slice, training subset, scoring subset, checkpoints' part
        held_rng, train_rng, eval_rng, interim_rng = (np.random.default_rng([split_seed, k]) for k in range(4))
        train_strata = _strata(self.train, self.is_regression)
        if mode == "search":
            size = max(1, round(n * heldout_fraction))  # a tiny set still gets a scoring example
            held = stratified_sample(train_strata, everything, size, held_rng) if n > 1 else everything
            pool = np.setdiff1d(everything, held)
            evals = {"": View(self.train.name, held)}
        else:
            if self.dev is None:
                raise UserError(f"task {self.name} has no dev set for a final run (pass --dev-file)")
            pool = everything
            evals = {"": View(self.dev.name, np.arange(len(self.dev)))}
            evals |= {suffix: View(split.name, np.arange(len(split))) for suffix, split in self.extra_evals.items()}
        size = len(pool)
        if train_fraction is not None:
            size = min(size, round(len(pool) * train_fraction))
        if max_train_samples is not None:
            size = min(size, max_train_samples)
        train = View(self.train.name, stratified_sample(train_strata, pool, size, train_rng))
        if max_eval_samples is not None:
            evals = {suffix: self._sample(view, max_eval_samples, eval_rng) for suffix, view in evals.items()}
        interim = None
        if interim_fraction is not None:
            interim = self._sample(evals[""], max(1, round(len(evals[""]) * interim_fraction)), interim_rng)
        return Plan(mode, train, evals, interim)

    def _sample(self, view: View, size: int, rng: np.random.Generator) -> View:
        """A stratified sample of `size` of `view`'s rows (all of them when it has no more)."""
        strata = _strata(self.split(view.split), self.is_regression)
        return View(view.split, stratified_sample(strata, view.indices, size, rng))


def _strata(split: Split, regression: bool) -> np.ndarray:
    """A stratum id per example: the class id, or the decile of a regression score."""
    labels = np.asarray(split.labels)
    if not regression:
        return labels.astype(np.int64)
    if len(labels) == 0:
        return labels.astype(np.int64)
    edges = np.quantile(labels, np.linspace(0, 1, REGRESSION_STRATA + 1)[1:-1])
    return np.searchsorted(edges, labels, side="right")


def stratified_sample(strata: np.ndarray, indices: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """`size` of `indices`, sorted, keeping each stratum's share (largest-remainder rounding).

    strata: a stratum id for every example of the split (indexed by the values of `indices`).
    Each stratum is shuffled whatever `size` is, and its first members are taken, so for one
    `rng` state a smaller sample is (up to rounding) contained in a larger one. All of `indices`
    when `size` >= their number.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if size >= len(indices):
        return np.sort(indices)
    if size <= 0:
        return indices[:0]
    groups = {int(s): rng.permutation(indices[strata[indices] == s]) for s in np.unique(strata[indices])}
    quotas = {s: size * len(g) / len(indices) for s, g in groups.items()}
    counts = {s: int(q) for s, q in quotas.items()}
    # the remaining places go to the strata with the largest fractional parts (ties: larger, then lower id)
    order = sorted(groups, key=lambda s: (-(quotas[s] - counts[s]), -len(groups[s]), s))
    for s in order[: size - sum(counts.values())]:
        counts[s] += 1
    return np.sort(np.concatenate([groups[s][: counts[s]] for s in groups]))
