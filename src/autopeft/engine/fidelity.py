"""How much training a trial gets (its fidelity), and the default learning rate of each method family.

Pure data, no torch: the search command parses a `Fidelity` from the command line and stores
`to_dict()` in its study.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from autopeft.errors import UserError
from autopeft.methods import Method
from autopeft.modules import MODULE_KINDS, MODULE_RATES, QUIET_PREFIX_POSITIONS
from autopeft.space import PEFTConfig

if TYPE_CHECKING:
    from autopeft.tasks import Plan, TaskData

# AdamW learning rates by method family, used when the fidelity sets none.
# - adapter, prefix, mixed 1e-4: the original AutoPEFT code trains every searched configuration and
#   the adapter/prefix/MAM/UniPELT baselines at 1e-4 (cambridgeltl/autopeft, adapterhub/bo/base_function.py).
# - lora 5e-4: Hu et al. (2022) train LoRA on GLUE at 4e-4..5e-4 (RoBERTa-base).
# - bitfit 1e-3: Ben Zaken et al. (2022) find 1e-3 best for BitFit on GLUE (searched 1e-4..1e-3).
# - full 2e-5: the AutoPEFT full fine-tuning baseline (run_finetune.sh) and BERT's GLUE recipe.
DEFAULT_LRS: dict[str, float] = {
    "adapter": 1e-4,
    "prefix": 1e-4,
    "lora": 5e-4,
    "mixed": 1e-4,
    "bitfit": 1e-3,
    "full": 2e-5,
}


def family_of(item: PEFTConfig | Method) -> str:
    """The family whose default learning rate a configuration or baseline trains with."""
    if isinstance(item, Method):
        return item.family
    families = {MODULE_KINDS[m].family for m in item.active_modules}
    return families.pop() if len(families) == 1 else "mixed"


POOLINGS = ("cls", "mean")  # the heads of autopeft.peft.heads
# Arithmetic of the forward passes: fp32 as always, or torch.autocast to bf16 / fp16 (fp16 with loss
# scaling); weights and optimiser states stay fp32 either way. Which devices take which: engine/devices.
PRECISIONS = ("fp32", "bf16", "fp16")
# Where the fresh head's outputs start: "prior", at the constant prediction (the bias of its last layer
# set to the training labels' mean score, or to their classes' log frequencies), or "zero", at
# adapters' initialisation. From zero, the first steps of a regression head chase the labels' mean
# (about 2.7 on STS-B) with a large loss through every module; a parallel adapter at h/2 on STS-B
# then ended at 0.33 correlation on one seed of three, and 0.73 starting from the prior.
HEAD_STARTS = ("prior", "zero")
# How prefix-tuning's keys start: "quiet", a prefix longer than QUIET_PREFIX_POSITIONS starts with the
# attention share of that many positions (keys offset against each head's mean query direction,
# `peft.prefix_start`), or "random", as adapters makes them. A random prefix of 192 on STS-B (MiniLM,
# 1000 x 2) ended at 0.46, 0.46 and 0.73 correlation for three seeds (see docs/BENCHMARKS.md).
PREFIX_STARTS = ("quiet", "random")
# The knobs that take one of a few names, and those names.
KNOB_CHOICES: dict[str, tuple[str, ...]] = {
    "pooling": POOLINGS,
    "precision": PRECISIONS,
    "head_start": HEAD_STARTS,
    "prefix_start": PREFIX_STARTS,
    "module_rates": tuple(MODULE_RATES),
}


def legacy_defaults(stored: dict[str, Any]) -> dict[str, Any]:
    """What a stored fidelity that lacks a later knob trained with, so that it reads as it ran.

    Before `head_start` every head started from zero. Before `module_rates` the module kinds trained
    "damped" if the study is younger than per-kind rates, which came just before `evals_per_epoch`,
    and "equal" (one rate for all) if it is older. Before `prefix_start` prefixes started at random.
    """
    return {
        "head_start": "zero",
        "module_rates": "damped" if "evals_per_epoch" in stored else "equal",
        "prefix_start": "random",
    }


class FidelityError(UserError):
    """A malformed or out-of-range fidelity; the message names the knob."""


@dataclass(frozen=True)
class Fidelity:
    """Training budget and optimiser settings of one trial. Defaults: one epoch, the paper's batch 32, length 128.

    The paper's final runs are `Fidelity.paper_final()`: 20 epochs, early stopping with patience 10.
    """

    epochs: int = field(default=1, metadata={"help": "passes over the training subset"})
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many optimiser steps"})
    max_train_samples: int | None = field(default=None, metadata={"help": "training subset size (stratified)"})
    train_fraction: float | None = field(default=None, metadata={"help": "training subset as a fraction (0, 1]"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "scoring subset size (stratified)"})
    patience: int | None = field(default=None, metadata={"help": "stop after this many evaluations without gain"})
    evals_per_epoch: int = field(default=1, metadata={"help": "evaluations per epoch, evenly spaced in steps"})
    interim_eval_fraction: float | None = field(
        default=None, metadata={"help": "evaluations within an epoch score this share of the scoring set"}
    )
    batch_size: int = field(default=32, metadata={"help": "training batch size"})
    eval_batch_size: int = field(default=64, metadata={"help": "evaluation batch size"})
    lr: float | None = field(default=None, metadata={"help": "AdamW learning rate; default by method family"})
    max_length: int = field(default=128, metadata={"help": "tokens per example after truncation"})
    warmup_ratio: float = field(default=0.06, metadata={"help": "share of steps with linear warm-up"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW decoupled weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm; 0 turns it off"})
    heldout_fraction: float = field(default=0.1, metadata={"help": "share of train held out to score a search"})
    split_seed: int = field(default=0, metadata={"help": "seed of the held-out slice and the subsets"})
    pooling: str = field(default="cls", metadata={"help": "what the head reads: cls (first token) or mean"})
    precision: str = field(default="fp32", metadata={"help": "forward arithmetic: fp32, or autocast to bf16 or fp16"})
    head_start: str = field(default="prior", metadata={"help": "head outputs start at the constant prediction or zero"})
    module_rates: str = field(
        default="parallel-damped",
        metadata={"help": "each module kind's share of lr: parallel-damped (parallel at 0.3x), damped, equal"},
    )
    prefix_start: str = field(
        default="quiet",
        metadata={
            "help": f"quiet: a prefix starts with the attention share of at most {QUIET_PREFIX_POSITIONS}; random"
        },
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                if not _optional(f):
                    raise FidelityError(f"fidelity {f.name} cannot be none")
                continue
            kind = _base_type(f)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                object.__setattr__(self, f.name, value)
            if isinstance(value, bool) or not isinstance(value, kind):
                raise FidelityError(f"fidelity {f.name} must be {kind.__name__}, got {value!r}")
            if kind is float and not math.isfinite(value):
                raise FidelityError(f"fidelity {f.name} must be finite, got {value!r}")
        positive = ("epochs", "max_steps", "max_train_samples", "max_eval_samples", "patience", "evals_per_epoch",
                    "batch_size", "eval_batch_size", "max_length", "lr")  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise FidelityError(f"fidelity {name} must be positive, got {value}")
        for name in ("train_fraction", "interim_eval_fraction", "heldout_fraction"):
            value = getattr(self, name)
            upper = 0.5 if name == "heldout_fraction" else 1
            if value is not None and not 0 < value <= upper:
                raise FidelityError(f"fidelity {name} must be in (0, {upper}], got {value}")
        if self.max_train_samples is not None and self.train_fraction is not None:
            raise FidelityError("give max_train_samples or train_fraction, not both")
        for name, allowed in KNOB_CHOICES.items():
            if getattr(self, name) not in allowed:
                raise FidelityError(f"fidelity {name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise FidelityError(f"fidelity warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        for name in ("weight_decay", "max_grad_norm", "split_seed"):
            if getattr(self, name) < 0:
                raise FidelityError(f"fidelity {name} must not be negative, got {getattr(self, name)}")

    @classmethod
    def paper_final(cls, **changes: Any) -> Fidelity:
        """The paper's final-run budget: 20 epochs with early stopping after 10 evaluations without gain."""
        return cls(**{"epochs": 20, "patience": 10, **changes})

    @property
    def evaluations(self) -> int:
        """Evaluations a trial at this fidelity makes if it runs to its end (at most one per step)."""
        return self.epochs * self.evals_per_epoch

    def replace(self, **changes: Any) -> Fidelity:
        try:
            return dataclasses.replace(self, **changes)
        except TypeError as err:
            raise FidelityError(str(err)) from None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def plan(self, task: TaskData, mode: str) -> Plan:
        """What a trial at this fidelity trains on and is scored on (see `TaskData.plan`)."""
        return task.plan(
            mode,
            heldout_fraction=self.heldout_fraction,
            split_seed=self.split_seed,
            max_train_samples=self.max_train_samples,
            train_fraction=self.train_fraction,
            max_eval_samples=self.max_eval_samples,
            interim_fraction=self.interim_eval_fraction,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fidelity:
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise FidelityError(f"unknown fidelity {unknown[0]!r}; known: {', '.join(cls.knobs())}")
        return cls(**(legacy_defaults(data) | data))

    @classmethod
    def knobs(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def parse(cls, text: str, base: Fidelity | None = None) -> Fidelity:
        """`"epochs=1,max_train_samples=2000"` -> a Fidelity (unnamed knobs from `base` or the defaults).

        Values are numbers or `none`; `1e-4`, `2_000` and `0.5` are accepted where they fit the knob.
        """
        base = base or cls()
        changes: dict[str, Any] = {}
        by_name = {f.name: f for f in fields(cls)}
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, raw = item.partition("=")
            name, raw = name.strip(), raw.strip()
            if not sep or not name or not raw:
                raise FidelityError(f"fidelity {item!r} is not of the form name=value")
            if name not in by_name:
                raise FidelityError(f"unknown fidelity {name!r}; known: {', '.join(by_name)}")
            if name in changes:
                raise FidelityError(f"fidelity {name} is given twice")
            changes[name] = _parse_value(by_name[name], raw)
        return base.replace(**changes)

    def describe(self) -> str:
        """The knobs that differ from the defaults, as `parse` reads them back ('defaults' if none)."""
        default = Fidelity()
        parts = [f"{k}={_format(v)}" for k, v in self.to_dict().items() if v != getattr(default, k)]
        return ",".join(parts) or "defaults"


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(Fidelity)


def _base_type(f: dataclasses.Field) -> type:
    hint = _hints()[f.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if isinstance(hint, types.UnionType) else hint


def _optional(f: dataclasses.Field) -> bool:
    hint = _hints()[f.name]
    return isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)


def _parse_value(f: dataclasses.Field, raw: str) -> Any:
    if raw.lower() in ("none", "null"):
        if not _optional(f):
            raise FidelityError(f"fidelity {f.name} cannot be none")
        return None
    kind = _base_type(f)
    if kind is str:
        return raw
    try:
        number = float(raw.replace("_", ""))
    except ValueError:
        raise FidelityError(f"fidelity {f.name}={raw!r} is not a number") from None
    if kind is int:
        if not number.is_integer():
            raise FidelityError(f"fidelity {f.name} must be a whole number, got {raw!r}")
        return int(number)
    return number


def _format(value: Any) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
