"""The trial engine: one backbone in memory, many configurations trained and scored on it.

Each trial seeds everything, puts fresh PEFT modules and a fresh head on the pristine backbone,
trains them (see `loop`), scores the best evaluation, optionally saves the result, and takes the
modules off again. Full fine-tuning and BitFit change backbone tensors, so the engine copies those
first and puts them back afterwards: the backbone is bit-identical after every trial.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autopeft import models
from autopeft.engine import loop, saving
from autopeft.engine.devices import check_precision
from autopeft.engine.fidelity import DEFAULT_LRS, Fidelity, family_of
from autopeft.engine.memory import PeakMemory, release_memory
from autopeft.engine.result import EpochReport, TrialFailed, TrialResult
from autopeft.engine.tokens import TOKEN_CACHE, Encoded, TokenCache
from autopeft.errors import UserError
from autopeft.methods import Method, get_method
from autopeft.params import ParamCount, param_count
from autopeft.peft.build import HEAD_NAME, PEFTHandle, attach_config, attach_method, detach, eject_prefixes
from autopeft.peft.heads import start_head_at
from autopeft.peft.prefix_start import QueryMeans, has_long_prefix, measure_queries, quiet_prefixes
from autopeft.space import PEFTConfig
from autopeft.tasks import Plan, TaskData, View
from autopeft.tasks.metrics import is_constant

Trainable = PEFTConfig | Method | str
QUERY_SAMPLE = 64  # training examples whose queries give the directions a quiet prefix start pushes against


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _is_oom(err: BaseException) -> bool:
    if isinstance(err, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(err).lower()
    return "out of memory" in text or "can't allocate memory" in text


def _check_finite(values: np.ndarray, split: str) -> None:
    # A last update can blow the weights up after the final finite loss; scores of NaN outputs are meaningless.
    if not np.isfinite(values).all():
        raise TrialFailed(f"the model's outputs on {split} are not finite (training diverged)")


class Engine:
    """Loads `model` once and runs trials of configurations on `task`.

    model: a `--model` argument (local folder, hub id, or minilm / tiny-bert / tiny-roberta).
    device: "cpu", "cuda", ...; default: CUDA when available. progress: show a progress bar per
    trial (default: when stderr is a terminal). token_cache: where encoded splits are kept
    (default: one per process, shared by all engines).
    """

    def __init__(
        self,
        model: str,
        task: TaskData,
        *,
        device: str | None = None,
        progress: bool | None = None,
        token_cache: TokenCache | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        self.model_name = model
        self.task = task
        self.spec = models.resolve(model, trust_remote_code)
        self.hf_config = models.load_config(self.spec)
        self.dims = models.dims_from_config(self.hf_config)
        self.tokenizer = models.load_tokenizer(self.spec)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = models.load_adapter_model(self.spec, self.hf_config).to(self.device)
        for param in self.model.parameters():
            param.requires_grad = False
        # A model with one segment type (RoBERTa) must not get the tokenizer's pair segment ids.
        self.use_types = getattr(self.hf_config, "type_vocab_size", 0) > 1
        self.tokens = token_cache or TOKEN_CACHE
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.trials_run = 0
        self._query_means: dict[tuple[str, int, bytes], QueryMeans] = {}

    # --- data ------------------------------------------------------------------------------

    def encoded(self, split: str, max_length: int) -> Encoded:
        """The named split of the task, tokenised once per (tokenizer, max_length) and then reused."""
        key = f"{self.spec.tokenizer_path}|{type(self.tokenizer).__name__}"
        return self.tokens.get(self.task.split(split), self.tokenizer, key, max_length, self.use_types)

    def logits(
        self, view: View, *, model: Any = None, max_length: int = 128, batch_size: int = 64, precision: str = "fp32"
    ) -> np.ndarray:
        """Outputs of `model` (default: the engine's, as it is now) on `view`: `n x num_labels`."""
        data = self.encoded(view.split, max_length)
        model = model if model is not None else self.model
        return loop.logits(model, data, view.indices, batch_size, self.device, precision)

    # --- trials ----------------------------------------------------------------------------

    def resolve(self, item: Trainable) -> PEFTConfig | Method:
        """A configuration or a baseline method (by name), checked against this backbone."""
        if isinstance(item, str):
            try:
                return get_method(item)
            except ValueError as err:
                raise UserError(str(err)) from None
        if isinstance(item, PEFTConfig):
            item.check_layers(self.dims.num_layers)  # any size goes: the engine is not bound to a search space
            return item
        if isinstance(item, Method):
            return item
        raise TypeError(f"expected a PEFTConfig, a Method or a method name, got {type(item).__name__}")

    def count(self, item: PEFTConfig | Method) -> ParamCount:
        if isinstance(item, Method):
            return item.param_count(self.dims, self.task.num_labels)
        return param_count(item, self.dims, self.task.num_labels)

    def run_trial(
        self,
        config: Trainable,
        fidelity: Fidelity | None = None,
        seed: int = 42,
        mode: str = "search",
        out_dir: str | Path | None = None,
        on_epoch: Callable[[EpochReport], bool | None] | None = None,
    ) -> TrialResult:
        """Train `config` (a PEFTConfig, a Method or a method name) under `fidelity` and score it.

        mode "search" scores on the held-out slice of train, "final" on dev (see `TaskData.plan`).
        `on_epoch` sees every evaluation and may return True to stop the trial there.
        A NaN or infinite loss, running out of memory or an empty split gives a result with status
        "failed" and the reason; bad input (unknown method, layer out of range, a precision this
        device cannot train at) raises UserError.
        """
        fidelity = fidelity or Fidelity()
        check_precision(str(self.device), fidelity.precision)
        item = self.resolve(config)
        count = self.count(item)
        lr = fidelity.lr or DEFAULT_LRS[family_of(item)]
        plan = fidelity.plan(self.task, mode)
        result = TrialResult(
            status="ok",
            reason=None,
            task=self.task.name,
            model=self.model_name,
            mode=mode,
            seed=seed,
            config={"method": item.name} if isinstance(item, Method) else item.to_dict(),
            metric_name=self.task.metric_name,
            headline=None,
            params=count.peft,
            head_params=count.head,
            percent=count.percent,
            lr=lr,
            train_examples=len(plan.train),
            eval_examples=len(plan.evals[""]),
            fidelity=fidelity.to_dict(),
            out_dir=str(out_dir) if out_dir is not None else None,
        )
        out_path = Path(out_dir) if out_dir is not None else None
        if out_path is not None:
            saving.clear(out_path)  # a failed trial must not leave an earlier run's adapters behind
        peak = PeakMemory(str(self.device))
        out_of_memory = False
        peak.start()
        handle: PEFTHandle | None = None
        saved_backbone: dict[str, torch.Tensor] = {}
        started = time.perf_counter()
        try:
            self._check_plan(plan)
            seed_everything(seed)
            if isinstance(item, Method):
                handle = attach_method(self.model, item, self.dims, self.task.num_labels, fidelity.pooling)
            else:
                handle = attach_config(self.model, item, self.dims, self.task.num_labels, fidelity.pooling)
            if fidelity.head_start == "prior":
                start_head_at(self.model, HEAD_NAME, self.task.prior_outputs(plan))
            self.model.to(self.device)
            if fidelity.prefix_start == "quiet" and has_long_prefix(self.model, handle.adapter_names):
                quiet_prefixes(self.model, handle.adapter_names, self._queries(plan, fidelity.max_length))
            if handle.regime != "adapters":
                saved_backbone = {
                    n: p.detach().clone()
                    for n, p in self.model.named_parameters()
                    if p.requires_grad and not n.startswith("heads.")
                }
            self._train_and_score(item, handle, plan, fidelity, lr, seed, result, peak, out_path, on_epoch)
            if out_path is not None:
                self._save(handle, plan, fidelity, out_path, list(saved_backbone))
        except TrialFailed as err:
            self._fail(result, str(err))
        except (RuntimeError, MemoryError) as err:
            if not _is_oom(err):
                raise
            out_of_memory = True
            self._fail(result, f"out of memory: {str(err).strip().splitlines()[0] if str(err).strip() else ''}")
        finally:
            if handle is not None:
                detach(self.model, handle)
            if saved_backbone:
                loop.restore(self.model, saved_backbone)
            self.model.eval()
            result.peak_memory_mb = round(peak.peak_mb(), 1)
            saved_backbone.clear()
            release_memory(device_cache=out_of_memory)  # a GPU's cached blocks serve the next trial
            self.trials_run += 1
        result.wall_seconds = round(time.perf_counter() - started, 3)
        result.train_seconds = round(result.train_seconds, 3)
        result.eval_seconds = round(result.eval_seconds, 3)
        if out_path is not None:
            out_path.mkdir(parents=True, exist_ok=True)
            saving.write_json(out_path / "config.json", result.config)
            saving.write_json(out_path / "metrics.json", result.to_dict())
        return result

    def _queries(self, plan: Plan, max_length: int) -> QueryMeans:
        """The backbone's mean query directions on the first training examples of `plan` (measured once)."""
        rows = plan.train.indices[:QUERY_SAMPLE]
        key = (plan.train.split, max_length, np.asarray(rows).tobytes())
        if key not in self._query_means:
            batch = self.encoded(plan.train.split, max_length).batch(rows, self.device)
            batch.pop("labels")
            self._query_means[key] = measure_queries(self.model, batch)
        return self._query_means[key]

    def _check_plan(self, plan: Plan) -> None:
        if len(plan.train) == 0:
            raise TrialFailed(f"empty training split: no examples left to train on in {plan.train.split}")
        for suffix, view in plan.evals.items():
            if len(view) == 0:
                raise TrialFailed(f"empty scoring split: no examples in {view.split}{' ' + suffix if suffix else ''}")

    def _fail(self, result: TrialResult, reason: str) -> None:
        result.status = "failed"
        result.reason = reason
        result.headline = None
        result.stopped = "failed"

    def _train_and_score(
        self,
        item: PEFTConfig | Method,
        handle: PEFTHandle,
        plan: Plan,
        fidelity: Fidelity,
        lr: float,
        seed: int,
        result: TrialResult,
        peak: PeakMemory,
        out_path: Path | None,
        on_epoch: Callable[[EpochReport], bool | None] | None,
    ) -> None:
        regression = self.task.is_regression
        train_data = self.encoded(plan.train.split, fidelity.max_length)
        main = plan.evals[""]
        main_data = self.encoded(main.split, fidelity.max_length)
        precision = fidelity.precision

        def scorer(view: View) -> loop.Scorer:
            references = main_data.labels[view.indices]

            def score() -> tuple[float, dict[str, float], bool]:
                values = loop.logits(
                    self.model, main_data, view.indices, fidelity.eval_batch_size, self.device, precision
                )
                _check_finite(values, view.split)
                predictions = loop.to_predictions(values, regression)
                metrics = self.task.score(predictions, references)
                return metrics[self.task.metric_name], metrics, is_constant(predictions)

            return score

        description = f"{self.task.name} {item.name if isinstance(item, Method) else item.describe()}"
        outcome = loop.train(
            self.model,
            train_data,
            plan.train.indices,
            scorer(main),
            fidelity,
            lr,
            seed,
            self.device,
            peak=peak,
            progress=self.progress,
            description=description[:60],
            on_epoch=on_epoch,
            interim_score=scorer(plan.interim) if plan.interim is not None else None,
        )
        loop.restore(self.model, outcome.best_state)
        metrics = dict(outcome.best_metrics)
        started = time.perf_counter()
        for suffix, view in plan.evals.items():
            if suffix:  # e.g. MNLI mismatched, scored once with the best state
                data = self.encoded(view.split, fidelity.max_length)
                values = loop.logits(self.model, data, view.indices, fidelity.eval_batch_size, self.device, precision)
                _check_finite(values, view.split)
                extra = self.task.score(loop.to_predictions(values, regression), data.labels[view.indices])
                metrics |= {f"{k}_{suffix}": v for k, v in extra.items()}
        result.eval_seconds = outcome.eval_seconds + time.perf_counter() - started
        result.train_seconds = outcome.train_seconds
        result.headline = outcome.best_headline
        result.metrics = metrics
        result.history = outcome.history
        result.best_epoch = outcome.best_epoch
        result.steps = outcome.steps
        result.epochs_run = round(outcome.steps / outcome.steps_per_epoch, 4)
        result.stopped = outcome.stopped
        if outcome.train_seconds:
            result.examples_per_second = round(outcome.examples / outcome.train_seconds, 2)

    def _save(self, handle: PEFTHandle, plan: Plan, fidelity: Fidelity, out: Path, changed: list[str]) -> None:
        """Trained modules, the predictions they give and what a loader needs (metrics.json comes last)."""
        out.mkdir(parents=True, exist_ok=True)
        eject_prefixes(self.model, handle)  # deployment form: flat prefixes, no reparameterisation MLP
        saving.save_model(self.model, handle, out, changed)
        main = plan.evals[""]
        values = self.logits(
            main, max_length=fidelity.max_length, batch_size=fidelity.eval_batch_size, precision=fidelity.precision
        )
        np.savez(out / "predictions.npz", split=main.split, rows=main.indices, logits=values)
        saving.write_json(
            out / "setup.json",
            {
                "model": self.model_name,
                "tokenizer": self.spec.tokenizer_path,
                "max_length": fidelity.max_length,
                "task": self.task.name,
                "num_labels": self.task.num_labels,
                "label_names": list(self.task.label_names) if self.task.label_names else None,
                "adapters": handle.adapter_names,
                "regime": handle.regime,
                "head": HEAD_NAME,
                "backbone_tensors": saving.BACKBONE_FILE if changed else None,
            },
        )
        saving.make_portable(out)  # named as the user named the backbone, the task's labels, a load note
