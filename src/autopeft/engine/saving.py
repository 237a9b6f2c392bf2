"""Write a trained trial to a folder in the adapters library's format, and load it back.

Layout of a trial folder:
- `metrics.json`: the `TrialResult` (headline, all metrics, parameters, times, memory, history);
- `config.json`: the configuration (`PEFTConfig.to_dict()`) or `{"method": name}`;
- `setup.json`: what a loader needs: backbone, adapter names in stack order, head, labels, max length
  (and, once `make_portable` has run, as `export` does, a `load` note for plain adapters users);
- `adapters/`: `model.save_adapter_setup(...)` output: `adapter_setup.json`, one folder per adapter
  (each loadable with adapters' `load_adapter(..., use_safetensors=True)`) and the head in
  `adapters/task/` (`load_head(..., use_safetensors=True)`), weights as `.safetensors`.
  Prefix-tuning is saved ejected (its flat prefixes, `flat=True` in its config), as deployed;
- `backbone.safetensors`: for full fine-tuning and BitFit, the backbone tensors they changed;
- `predictions.npz`: the saved model's outputs (`logits`, `n x num_labels`) on the scoring set
  (`rows` of split `split`), computed after ejection, so a reload can be checked against them.

No file of a trial folder is a pickle: weights are safetensors, `predictions.npz` holds a string, an
integer and a float array, all readable with `allow_pickle=False`. Folders saved before weights
were safetensors (adapters' `pytorch_adapter.bin` / `pytorch_model_head.bin`) still load: adapters
falls back to the `.bin` file when no `.safetensors` file is there.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from autopeft.errors import UserError
from autopeft.peft.build import HEAD_NAME, PEFTHandle

ADAPTERS_DIR = "adapters"
BACKBONE_FILE = "backbone.safetensors"


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def clear(out_dir: Path) -> None:
    """Remove what an earlier trial saved in `out_dir` (the folder itself and other files stay)."""
    if (out_dir / ADAPTERS_DIR).is_dir():
        shutil.rmtree(out_dir / ADAPTERS_DIR)
    for name in (BACKBONE_FILE, "predictions.npz", "setup.json", "metrics.json", "config.json"):
        (out_dir / name).unlink(missing_ok=True)


def _drop_prefix_aliases(module: Any, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    """State-dict post-hook: keep one name per prefix-tuning tensor (the pool's own, the shortest).

    adapters' prefix-tuning pool hangs under the base model and under every layer's attention
    (`layer.<i>.attention.self.prefix_tuning.pool...`), so one tensor appears under several names.
    safetensors refuses such aliases; since they are one tensor, loading the one name left fills
    every alias (adapters loads into the live modules, which share the pool).
    """
    groups: dict[tuple, list[str]] = {}
    for name, tensor in state_dict.items():
        if ".prefix_tunings." in name:
            key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.dtype)
            groups.setdefault(key, []).append(name)
    for names in groups.values():
        for name in sorted(names, key=lambda n: (n.count("."), n))[1:]:
            del state_dict[name]


@contextmanager
def _no_shared_tensors(model: Any) -> Iterator[None]:
    """While saving: `model.state_dict()` names each prefix-tuning tensor once (see `_drop_prefix_aliases`)."""
    hook = model.register_state_dict_post_hook(_drop_prefix_aliases)
    try:
        yield
    finally:
        hook.remove()


def save_model(model: Any, handle: PEFTHandle, out_dir: Path, changed_backbone: list[str]) -> None:
    """Save the trained modules of `handle`: adapters + head, or head + changed backbone tensors.

    Everything is written as safetensors through adapters' own `use_safetensors=True`; the aliases
    of prefix-tuning's shared pool are dropped while saving (`_no_shared_tensors`).
    """
    adapters_dir = out_dir / ADAPTERS_DIR
    clear(out_dir)  # a previous run's adapters would otherwise mix with these
    with _no_shared_tensors(model):
        if handle.adapter_names:
            model.save_adapter_setup(str(adapters_dir), handle.setup, head_setup=HEAD_NAME, use_safetensors=True)
        else:
            (adapters_dir / HEAD_NAME).mkdir(parents=True, exist_ok=True)
            model.save_head(str(adapters_dir / HEAD_NAME), HEAD_NAME, use_safetensors=True)
    if changed_backbone:
        from safetensors.torch import save_file

        params = dict(model.named_parameters())
        save_file({n: params[n].detach().cpu().contiguous() for n in changed_backbone}, str(out_dir / BACKBONE_FILE))


def load_trial(out_dir: str | Path, model: Any = None, *, device: str = "cpu") -> Any:
    """The trained model of a trial folder, ready to predict: backbone + adapters (stacked) + head.

    `model`: a freshly loaded backbone to load into (default: the one named in `setup.json`).
    Uses adapters' own `load_adapter` and `load_head` (safetensors, or the `.bin` files of older
    folders), then upgrades parallel adapters so that serial and parallel ones compose at the FFN
    (`enable_ffn_branches`).
    """
    from adapters.composition import Stack

    from autopeft import models
    from autopeft.peft.ffn_branch import enable_ffn_branches
    from autopeft.peft.heads import register_heads

    out_dir = Path(out_dir)
    setup_path = out_dir / "setup.json"
    if not setup_path.is_file():
        raise UserError(f"{out_dir} is not a trial folder (no setup.json)")
    setup = json.loads(setup_path.read_text(encoding="utf-8"))
    if model is None:
        model = models.load_adapter_model(models.resolve(setup["model"]))
    names = [model.load_adapter(str(out_dir / ADAPTERS_DIR / name), use_safetensors=True) for name in setup["adapters"]]
    enable_ffn_branches(model)
    if (out_dir / BACKBONE_FILE).is_file():
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(out_dir / BACKBONE_FILE)), strict=False)
    register_heads(model)  # a mean-pooling head loads as itself, not as adapters' first-token head
    model.load_head(str(out_dir / ADAPTERS_DIR / HEAD_NAME), use_safetensors=True)
    if names:
        model.set_active_adapters(Stack(*names))
    model.active_head = HEAD_NAME
    model.to(device)
    model.eval()
    return model


def make_portable(out_dir: str | Path) -> dict[str, Any]:
    """Rewrite a trial folder so that it loads on another machine; returns its new `setup.json`.

    The backbone is named as the user named it (an alias such as `minilm`, a hub id or a folder),
    never by the local path it resolved to: `setup.json`'s tokenizer and the `model_name` adapters
    writes into each adapter's and the head's config become that name, and `load_trial` resolves it
    (`models.resolve`). The head gets the task's label names instead of adapters' `LABEL_0, ...`,
    and `setup.json` a `load` note: how a plain adapters user loads the folder.
    """
    out_dir = Path(out_dir)
    setup_path = out_dir / "setup.json"
    if not setup_path.is_file():
        raise UserError(f"{out_dir} is not a trial folder (no setup.json)")
    setup = json.loads(setup_path.read_text(encoding="utf-8"))
    model_name = setup["model"]
    for config_path in sorted((out_dir / ADAPTERS_DIR).glob("*/*_config.json")):
        saved = json.loads(config_path.read_text(encoding="utf-8"))
        saved["model_name"] = model_name
        labels = setup.get("label_names")
        if config_path.name == "head_config.json" and labels and "label2id" in saved.get("config", {}):
            saved["config"]["label2id"] = {label: i for i, label in enumerate(labels)}
        write_json(config_path, saved)
    setup["tokenizer"] = model_name
    setup["load"] = load_note(out_dir, setup)
    write_json(setup_path, setup)
    return setup


def needs_ffn_branches(out_dir: str | Path, adapters: list[str]) -> bool:
    """Whether a trial folder puts a serial and a parallel bottleneck adapter at one FFN (then a loader
    must call `enable_ffn_branches(model)`; adapters alone would replace the FFN output)."""
    at_ffn = []
    for name in adapters:
        path = Path(out_dir) / ADAPTERS_DIR / name / "adapter_config.json"
        config = json.loads(path.read_text(encoding="utf-8")).get("config", {}) if path.is_file() else {}
        if "reduction_factor" in config and config.get("output_adapter"):
            at_ffn.append(bool(config.get("is_parallel")))
    return any(at_ffn) and not all(at_ffn)


def load_note(out_dir: str | Path, setup: dict[str, Any]) -> str:
    """How to load a trial folder with the adapters library alone (or with autopeft)."""
    from autopeft.peft.heads import MEAN_POOL_HEAD

    head_config = Path(out_dir) / ADAPTERS_DIR / HEAD_NAME / "head_config.json"
    head = json.loads(head_config.read_text(encoding="utf-8")) if head_config.is_file() else {}
    from autopeft.models import ALIASES

    model = setup["model"]
    if model in ALIASES:  # autopeft's own names: a packaged checkpoint, or a seeded random test model
        steps = [f"adapters: model = autopeft.models.load_adapter_model(autopeft.models.resolve({model!r}))"]
    else:
        steps = [f"adapters: model = AutoAdapterModel.from_pretrained({model!r})"]
    if setup.get("adapters"):
        steps.append(
            f"names = [model.load_adapter('{ADAPTERS_DIR}/' + n, use_safetensors=True) for n in {setup['adapters']}]"
        )
    if needs_ffn_branches(out_dir, setup.get("adapters") or []):
        steps.append(
            "autopeft.peft.ffn_branch.enable_ffn_branches(model) (required: a serial and a parallel adapter "
            "share an FFN, which adapters alone cannot compose)"
        )
    if setup.get("backbone_tensors"):
        steps.append(f"model.load_state_dict(safetensors.torch.load_file({setup['backbone_tensors']!r}), strict=False)")
    if head.get("config", {}).get("head_type") == MEAN_POOL_HEAD:
        steps.append("autopeft.peft.heads.register_heads(model) (a mean-pooling head)")
    steps.append(f"model.load_head('{ADAPTERS_DIR}/{HEAD_NAME}', use_safetensors=True)")
    if setup.get("adapters"):
        steps.append("model.set_active_adapters(adapters.composition.Stack(*names))")
    return "; ".join(steps) + ". Or: autopeft.engine.load_trial(folder)."


def load_predictions(out_dir: str | Path) -> tuple[str, np.ndarray, np.ndarray]:
    """(split name, rows, logits `n x num_labels`) saved with a trial."""
    with np.load(Path(out_dir) / "predictions.npz", allow_pickle=False) as data:
        return str(data["split"]), data["rows"], data["logits"]
