"""Export a trial's LoRA as a Hugging Face `peft` adapter that plain transformers models load.

`export_peft(trial_dir, out_dir)` writes `peft`'s own folder (`adapter_config.json`,
`adapter_model.safetensors`, written by `PeftModel.save_pretrained`) plus `autopeft_export.json`
(backbone, labels, head). What maps exactly:

- LoRA: adapters' `LoRAConfig(r, alpha, attn_matrices)` adds `x @ A^T @ B^T * alpha / r` to the
  attention projections of the layers not left out; `peft`'s `LoraConfig(r, lora_alpha=alpha,
  target_modules=[...], layers_to_transform=[...])` adds `B(A(x)) * lora_alpha / r` to the same
  projections, with A (`r x in`) and B (`out x r`) copied as they are.
- The head: adapters' 2-layer classification head on the first token (dense, tanh, out) is
  BERT's pooler + classifier, or RoBERTa's classification head, in
  `AutoModelForSequenceClassification`; those modules are saved in the adapter
  (`modules_to_save`), so `PeftModel.from_pretrained(AutoModelForSequenceClassification
  .from_pretrained(backbone, num_labels=n), folder)` predicts the task with no autopeft code.
  A mean-pooling head (or a backbone whose sequence-classification head has another shape) has
  no transformers class: the LoRA is then exported on `AutoModel` (`FEATURE_EXTRACTION`) and the
  head's two linear layers go to `head.safetensors`; `load_peft_export(folder)` rebuilds both.

What does not map is refused with `UserError`: bottleneck adapters (serial, parallel, Houlsby,
UniPELT) have no `peft` counterpart; `peft`'s prefix-tuning passes the prefixes as a key/value
cache, and transformers then shifts the backbone's position ids by the prefix length, which
adapters' prefix-tuning does not, so the predictions would differ; full fine-tuning and BitFit
change the backbone itself. Every export is checked: the `peft` model must reproduce the trial's
outputs on a probe batch (atol 1e-5) or nothing is written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autopeft.errors import UserError

EXPORT_FILE = "autopeft_export.json"
HEAD_FILE = "head.safetensors"
SEQUENCE_CLASSIFICATION = "sequence_classification"  # the head is the transformers model's own
MEAN_POOL = "mean_pool"  # the head is in HEAD_FILE, on the mean of the backbone's hidden states
ATOL = 1e-5
_PROBE_SEED = 0


def export_peft(trial_dir: str | Path, out_dir: str | Path) -> Path:
    """Write the trial in `trial_dir` as a `peft` LoRA adapter folder `out_dir`; returns `out_dir`.

    Raises UserError for a trial `peft` cannot express exactly (see the module docstring), before
    anything is written. Loading: `load_peft_export(out_dir)`, or with `peft` alone for a
    first-token head (`autopeft_export.json` says which: `head` is "sequence_classification").
    """
    from peft import LoraConfig, TaskType, get_peft_model

    from autopeft.engine.saving import load_trial

    trial_dir, out_dir = Path(trial_dir), Path(out_dir)
    setup = _read_setup(trial_dir)
    if out_dir.is_file() or (out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / EXPORT_FILE).is_file()):
        raise UserError(f"{out_dir} exists and is not an earlier peft export: pass a new or empty folder")
    lora = _lora_config(trial_dir, setup)
    model = load_trial(trial_dir)
    head = model.heads[setup["head"]]
    hf_model, head_kind = _transformers_model(model, setup, head)
    lora_modules = _lora_modules(model, lora["name"])
    targets = sorted({path.rsplit(".", 1)[-1] for path in lora_modules})
    layers = sorted({_layer_of(path) for path in lora_modules})
    peft_config = LoraConfig(
        task_type=TaskType.SEQ_CLS if head_kind == SEQUENCE_CLASSIFICATION else TaskType.FEATURE_EXTRACTION,
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=targets,
        layers_to_transform=layers,
        modules_to_save=_head_modules(hf_model) if head_kind == SEQUENCE_CLASSIFICATION else None,
        base_model_name_or_path=_backbone_path(setup),
    )
    if head_kind == SEQUENCE_CLASSIFICATION:
        _copy_head_into(hf_model, head)  # before wrapping: peft copies these modules into `modules_to_save`
    peft_model = get_peft_model(hf_model, peft_config).eval()
    for config in peft_model.peft_config.values():  # peft takes the loaded model's own path; keep the name
        config.base_model_name_or_path = _backbone_path(setup)
    _copy_lora(peft_model, lora_modules)
    export = {
        "format": "peft",
        "head": head_kind,
        "model": setup["model"],
        "tokenizer": setup.get("tokenizer"),
        "max_length": setup.get("max_length"),
        "task": setup.get("task"),
        "num_labels": setup["num_labels"],
        "label_names": setup.get("label_names"),
    }
    linears = _head_linears(head)
    _verify(model, _assemble(peft_model, head_kind, linears), hf_model.config)

    if out_dir.is_dir():
        shutil.rmtree(out_dir)  # an earlier export's files would otherwise mix with these
    out_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(out_dir))
    if head_kind == MEAN_POOL:
        from safetensors.torch import save_file

        save_file(
            {n: t.detach().cpu().contiguous() for n, t in linears.state_dict().items()},
            str(out_dir / HEAD_FILE),
        )
    (out_dir / EXPORT_FILE).write_text(json.dumps(export, indent=2) + "\n", encoding="utf-8")
    return out_dir


def load_peft_export(folder: str | Path, base_model: Any = None, *, device: str = "cpu") -> nn.Module:
    """The exported model, ready to predict: `model(input_ids=..., attention_mask=...).logits`.

    `base_model`: the plain transformers backbone to put the adapter on (default: the one named in
    `autopeft_export.json`, as `AutoModelForSequenceClassification` or, for a mean-pooling head,
    `AutoModel`). Uses `PeftModel.from_pretrained`; a mean-pooling head is added from `head.safetensors`.
    """
    from peft import PeftModel

    folder = Path(folder)
    path = folder / EXPORT_FILE
    if not path.is_file():
        raise UserError(f"{folder} is not a peft export of autopeft (no {EXPORT_FILE})")
    export = json.loads(path.read_text(encoding="utf-8"))
    if base_model is None:
        base_model = _load_backbone(export)
    peft_model = PeftModel.from_pretrained(base_model, str(folder)).eval()
    linears = None
    if export["head"] == MEAN_POOL:
        from safetensors.torch import load_file

        hidden = base_model.config.hidden_size
        linears = _HeadLinears(hidden, export["num_labels"])
        linears.load_state_dict(load_file(str(folder / HEAD_FILE)))
    return _assemble(peft_model, export["head"], linears).to(device).eval()


# --- what can be exported -------------------------------------------------------------------


def _read_setup(trial_dir: Path) -> dict[str, Any]:
    path = trial_dir / "setup.json"
    if not path.is_file():
        raise UserError(f"{trial_dir} is not a trial folder (no setup.json)")
    return json.loads(path.read_text(encoding="utf-8"))


def _refuse(trial_dir: Path, why: str) -> UserError:
    return UserError(f"cannot export {trial_dir} to peft: {why}; only LoRA trials can be exported")


def _lora_config(trial_dir: Path, setup: dict[str, Any]) -> dict[str, Any]:
    """The saved adapters config of the trial's one LoRA adapter (with its `name`), or UserError."""
    if setup.get("regime", "adapters") != "adapters" or setup.get("backbone_tensors"):
        raise _refuse(trial_dir, f"{setup.get('regime')} changes the backbone's own weights")
    found = []
    for name in setup["adapters"]:
        saved = json.loads((trial_dir / "adapters" / name / "adapter_config.json").read_text(encoding="utf-8"))
        config = saved["config"]
        architecture = config.get("architecture")
        if architecture == "prefix_tuning":
            raise _refuse(
                trial_dir,
                "peft's prefix-tuning shifts the backbone's position ids by the prefix length, adapters' does not",
            )
        if architecture != "lora":
            raise _refuse(trial_dir, f"adapter {name!r} ({architecture or 'bottleneck'}) has no peft equivalent")
        plain = (
            config.get("composition_mode") == "add"
            and not config.get("use_gating")
            and not config.get("use_dora")
            and config.get("selfattn_lora", True)
            and not config.get("intermediate_lora")
            and not config.get("output_lora")
        )
        if not plain:
            raise _refuse(trial_dir, f"LoRA adapter {name!r} is gated, scaled or outside attention")
        found.append({**config, "name": name})
    if len(found) != 1:
        raise _refuse(trial_dir, "the trial has no LoRA adapter" if not found else "the trial has several")
    return found[0]


# --- building the transformers + peft model ---------------------------------------------------


class _HeadLinears(nn.Module):
    """adapters' 2-layer head as named layers: `dense` (tanh) then `out_proj`, `h -> h -> num_labels`."""

    def __init__(self, hidden: int, num_labels: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled: `batch x h` -> logits `batch x num_labels`."""
        return self.out_proj(torch.tanh(self.dense(pooled)))


def _head_linears(head: Any) -> _HeadLinears:
    """The two linear layers of an adapters classification head (layers 1 and 4 of its Sequential)."""
    config = head.config
    if config.get("layers") != 2 or config.get("activation_function") != "tanh" or config.get("use_pooler"):
        raise UserError(f"cannot export to peft: the head ({config}) is not a 2-layer tanh head")
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    first, last = linears
    out = _HeadLinears(first.in_features, last.out_features)
    out.dense.load_state_dict(first.state_dict())
    out.out_proj.load_state_dict(last.state_dict())
    return out


def _transformers_model(model: Any, setup: dict[str, Any], head: Any) -> tuple[Any, str]:
    """A transformers model with the trial's backbone weights, and how its head is exported."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    from autopeft.peft.heads import MEAN_POOL_HEAD

    config = _hf_config(model.config, setup)
    if head.config.get("head_type") == MEAN_POOL_HEAD:
        hf_model, kind = AutoModel.from_config(config), MEAN_POOL
    else:
        hf_model, kind = AutoModelForSequenceClassification.from_config(config), SEQUENCE_CLASSIFICATION
        if not _head_modules(hf_model):
            raise UserError(
                f"cannot export to peft: {config.model_type} has no BERT- or RoBERTa-like classification head"
            )
    _copy_backbone(model.base_model, hf_model.base_model)
    return hf_model.eval(), kind


def _hf_config(config: Any, setup: dict[str, Any]) -> Any:
    from transformers import AutoConfig

    out = AutoConfig.for_model(**{**config.to_dict(), "num_labels": setup["num_labels"]})
    if setup.get("label_names"):
        out.id2label = dict(enumerate(setup["label_names"]))
        out.label2id = {name: i for i, name in out.id2label.items()}
    if setup["num_labels"] == 1:
        out.problem_type = "regression"
    return out


def _head_modules(hf_model: Any) -> list[str]:
    """Names of the sequence-classification modules adapters' head maps onto; [] when it maps onto none.

    BERT-like: `pooler` (dense + tanh on the first token) and `classifier` (linear). RoBERTa-like:
    `classifier` with `dense` and `out_proj` on the first token.
    """
    classifier = getattr(hf_model, "classifier", None)
    pooler = getattr(hf_model.base_model, "pooler", None)
    if (
        isinstance(classifier, nn.Linear)
        and isinstance(getattr(pooler, "dense", None), nn.Linear)
        and isinstance(getattr(pooler, "activation", None), nn.Tanh)
    ):
        return ["pooler", "classifier"]
    if isinstance(getattr(classifier, "dense", None), nn.Linear) and isinstance(
        getattr(classifier, "out_proj", None), nn.Linear
    ):
        return ["classifier"]
    return []


def _copy_head_into(hf_model: Any, head: Any) -> None:
    linears = _head_linears(head)
    if isinstance(hf_model.classifier, nn.Linear):
        hf_model.base_model.pooler.dense.load_state_dict(linears.dense.state_dict())
        hf_model.classifier.load_state_dict(linears.out_proj.state_dict())
    else:
        hf_model.classifier.dense.load_state_dict(linears.dense.state_dict())
        hf_model.classifier.out_proj.load_state_dict(linears.out_proj.state_dict())


def _copy_backbone(source: nn.Module, target: nn.Module) -> None:
    """The backbone tensors of an adapters base model into a plain transformers one (same names)."""
    state = source.state_dict()
    wanted = target.state_dict()
    missing = [name for name in wanted if name not in state]
    if missing:
        raise UserError(f"cannot export to peft: the transformers model has tensors the backbone lacks: {missing[:3]}")
    target.load_state_dict({name: state[name] for name in wanted})


def _lora_modules(model: Any, adapter_name: str) -> dict[str, nn.Module]:
    """Path relative to the base model -> adapters' LoRA module (`lora_A`: `r x in`, `lora_B`: `out x r`)."""
    found = {}
    for path, module in model.base_model.named_modules():
        loras = getattr(module, "loras", None)
        if isinstance(loras, nn.ModuleDict) and adapter_name in loras:
            found[path] = loras[adapter_name]
    return found


def _layer_of(path: str) -> int:
    numbers = [int(part) for part in path.split(".") if part.isdigit()]
    if len(numbers) != 1:
        raise UserError(f"cannot export to peft: cannot tell the layer of {path!r}")
    return numbers[0]


def _copy_lora(peft_model: Any, lora_modules: dict[str, nn.Module]) -> None:
    backbone = peft_model.get_base_model().base_model
    targets = {
        path
        for path, module in backbone.named_modules()
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {})
    }
    if targets != set(lora_modules):
        raise UserError(
            f"cannot export to peft: peft put LoRA on {sorted(targets)}, the trial on {sorted(lora_modules)}"
        )
    for path, lora in lora_modules.items():
        module = backbone.get_submodule(path)
        module.lora_A["default"].weight.data.copy_(lora.lora_A.data)
        module.lora_B["default"].weight.data.copy_(lora.lora_B.data)


def _backbone_path(setup: dict[str, Any]) -> str:
    """The backbone as the user named it (an alias, a hub id or their folder), never this machine's path of an
    alias: the export must travel; `load_peft_export` resolves the name again where it loads."""
    return setup["model"]


def _load_backbone(export: dict[str, Any]) -> Any:
    """The plain transformers model the adapter goes on: pretrained weights, or a tiny model's seeded ones."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    from autopeft import models

    spec = models.resolve(export["model"])
    config = _hf_config(models.load_config(spec), export)
    auto = AutoModelForSequenceClassification if export["head"] == SEQUENCE_CLASSIFICATION else AutoModel
    if not spec.is_tiny:
        return auto.from_pretrained(spec.path, config=config, use_safetensors=True)
    hf_model = auto.from_config(config)
    _copy_backbone(models.load_adapter_model(spec).base_model, hf_model.base_model)
    return hf_model.eval()


# --- the exported model -------------------------------------------------------------------------


class MeanPoolPeftClassifier(nn.Module):
    """A `peft` model on `AutoModel` with adapters' head on the masked mean of its hidden states."""

    def __init__(self, peft_model: nn.Module, head: _HeadLinears) -> None:
        super().__init__()
        self.peft_model = peft_model
        self.head = head

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        from transformers.modeling_outputs import SequenceClassifierOutput

        from autopeft.peft.heads import mean_pool

        kwargs.pop("labels", None)
        hidden = self.peft_model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)[0]  # batch x len x h
        return SequenceClassifierOutput(logits=self.head(mean_pool(hidden, attention_mask)))


def _assemble(peft_model: nn.Module, head_kind: str, linears: _HeadLinears | None) -> nn.Module:
    if head_kind == SEQUENCE_CLASSIFICATION:
        return peft_model
    if head_kind == MEAN_POOL and linears is not None:
        return MeanPoolPeftClassifier(peft_model, linears)
    raise UserError(f"unknown exported head {head_kind!r}")


def _verify(model: Any, exported: nn.Module, config: Any) -> None:
    """Both models give the same logits (atol 1e-5) on a padded probe batch, or UserError."""
    generator = torch.Generator().manual_seed(_PROBE_SEED)
    input_ids = torch.randint(1, min(config.vocab_size, 1000), (3, 12), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 8:] = 0
    attention_mask[2, 5:] = 0
    with torch.no_grad():
        expected = model(input_ids=input_ids, attention_mask=attention_mask).logits
        got = exported.eval()(input_ids=input_ids, attention_mask=attention_mask).logits
    if not torch.allclose(expected, got, atol=ATOL, rtol=0):
        raise UserError(
            f"cannot export to peft: the peft model's outputs differ from the trial's by "
            f"{(expected - got).abs().max().item():.2e}"
        )
