"""The original AutoPEFT way to run a trial, kept as the speed benchmark's reference.

As cambridgeltl/autopeft's `run_glue.py` did for every configuration: load the backbone from
disk, tokenise the data with every example padded to `max_length` (128), and train with adapters'
`AdapterTrainer` (the Hugging Face Trainer), evaluating after each epoch. The PEFT modules, the
data, the seed, the optimiser settings and the metrics are the engine's own, so only the machinery
differs. Two costs of the original are left out, which favours it: it also saved a checkpoint
every epoch, and it started a fresh Python process per trial.
"""

from __future__ import annotations

import gc
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from autopeft import models
from autopeft.engine.fidelity import Fidelity
from autopeft.engine.memory import PeakMemory, release_memory
from autopeft.methods import Method
from autopeft.peft.build import attach_config, attach_method
from autopeft.space import PEFTConfig
from autopeft.tasks import TaskData, View

_TRAINER_KEYS = {"eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second"}


@dataclass
class BaselineResult:
    headline: float
    metrics: dict[str, float]
    train_examples: int
    train_seconds: float  # inside trainer.train(), less its evaluations
    eval_seconds: float
    wall_seconds: float  # the whole trial: load, tokenise, train, evaluate
    load_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    peak_memory_mb: float = 0.0  # on a GPU: torch's peak allocation during the trial; else resident memory

    @property
    def examples_per_second(self) -> float:
        return self.train_examples / self.train_seconds if self.train_seconds else 0.0


class _Padded(torch.utils.data.Dataset):
    """Examples tokenised and padded to `max_length`, as the original's `padding="max_length"`."""

    def __init__(self, encodings: dict[str, list[list[int]]], labels: np.ndarray) -> None:
        self.encodings = encodings
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {k: torch.tensor(v[i]) for k, v in self.encodings.items()}
        item["labels"] = torch.tensor(self.labels[i])
        return item


def _dataset(tokenizer: Any, task: TaskData, view: View, max_length: int, use_types: bool) -> _Padded:
    split = task.split(view.split)
    rows = view.indices
    a = [split.text_a[i] for i in rows]
    b = [split.text_b[i] for i in rows] if split.text_b is not None else None
    enc = tokenizer(a, b, padding="max_length", truncation=True, max_length=max_length, return_token_type_ids=use_types)
    labels = np.asarray([split.labels[i] for i in rows], dtype=np.float32 if task.is_regression else np.int64)
    return _Padded({k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}, labels)


def run_baseline_trial(
    model_name: str,
    task: TaskData,
    item: PEFTConfig | Method,
    fidelity: Fidelity,
    lr: float,
    seed: int,
    train: View,
    evaluation: View,
    device: str = "cpu",
) -> BaselineResult:
    """One trial the original way; `train` and `evaluation` are the engine plan's views, for equal data.

    device: "cpu" or a CUDA device (the Trainer takes the first visible GPU); the Trainer's own
    bf16 / fp16 switches follow `fidelity.precision`, as the engine's autocast does.
    """
    from adapters import AdapterTrainer
    from transformers import PrinterCallback, Trainer, TrainingArguments, default_data_collator, set_seed

    peak = PeakMemory(device)
    peak.start()
    started = time.perf_counter()
    spec = models.resolve(model_name)
    hf_config = models.load_config(spec)
    dims = models.dims_from_config(hf_config)
    tokenizer = models.load_tokenizer(spec)
    model = models.load_adapter_model(spec, hf_config)
    load_seconds = time.perf_counter() - started
    set_seed(seed)
    if isinstance(item, Method):
        handle = attach_method(model, item, dims, task.num_labels)
    else:
        handle = attach_config(model, item, dims, task.num_labels)
    use_types = getattr(hf_config, "type_vocab_size", 0) > 1
    train_data = _dataset(tokenizer, task, train, fidelity.max_length, use_types)
    eval_data = _dataset(tokenizer, task, evaluation, fidelity.max_length, use_types)

    def compute_metrics(prediction: Any) -> dict[str, float]:
        values = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predictions = values[:, 0] if task.is_regression else values.argmax(axis=1)
        return task.score(predictions, prediction.label_ids)

    with tempfile.TemporaryDirectory(prefix="autopeft-baseline-") as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=fidelity.batch_size,
            per_device_eval_batch_size=fidelity.eval_batch_size,
            learning_rate=lr,
            num_train_epochs=fidelity.epochs,
            max_steps=fidelity.max_steps or -1,
            warmup_ratio=fidelity.warmup_ratio,
            weight_decay=fidelity.weight_decay,
            max_grad_norm=fidelity.max_grad_norm,
            lr_scheduler_type="linear",
            seed=seed,
            eval_strategy="epoch",
            logging_strategy="epoch",
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            use_cpu=torch.device(device).type == "cpu",
            bf16=fidelity.precision == "bf16",
            fp16=fidelity.precision == "fp16",
            dataloader_num_workers=0,
        )
        trainer_class = AdapterTrainer if handle.regime == "adapters" else Trainer
        trainer = trainer_class(
            model=model,
            args=args,
            train_dataset=train_data,
            eval_dataset=eval_data,
            data_collator=default_data_collator,
            compute_metrics=compute_metrics,
        )
        trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout
        train_started = time.perf_counter()
        trainer.train()
        inside_train = time.perf_counter() - train_started
        history = list(trainer.state.log_history)
        examples = min(len(train) * fidelity.epochs, trainer.state.global_step * fidelity.batch_size)
    evals = [h for h in history if "eval_runtime" in h]
    eval_seconds = sum(h["eval_runtime"] for h in evals)
    key = f"eval_{task.metric_name}"
    best = max(evals, key=lambda h: h[key])
    metrics = {k.removeprefix("eval_"): v for k, v in best.items() if k.startswith("eval_") and k not in _TRAINER_KEYS}
    del trainer, model, train_data, eval_data
    gc.collect()
    peak_mb = peak.peak_mb()
    release_memory()
    return BaselineResult(
        headline=best[key],
        metrics=metrics,
        train_examples=examples,
        train_seconds=inside_train - eval_seconds,
        eval_seconds=eval_seconds,
        wall_seconds=time.perf_counter() - started,
        load_seconds=load_seconds,
        history=history,
        peak_memory_mb=round(peak_mb, 1),
    )
