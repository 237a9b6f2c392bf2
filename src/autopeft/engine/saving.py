"""Write a trained trial to a folder in the adapters library's format, and load it back.

Layout of a trial folder:
- `metrics.json`: the `TrialResult` (headline, all metrics, parameters, times, memory, history);
- `config.json`: the configuration (`PEFTConfig.to_dict()`) or `{"method": name}`;
- `setup.json`: what a loader needs: backbone, adapter names in stack order, head, labels, max length;
- `adapters/`: `model.save_adapter_setup(...)` output: `adapter_setup.json`, one folder per adapter
  (each loadable with adapters' `load_adapter`) and the head in `adapters/task/` (`load_head`).
  Prefix-tuning is saved ejected (its flat prefixes, `flat=True` in its config), as deployed;
- `backbone.safetensors`: for full fine-tuning and BitFit, the backbone tensors they changed;
- `predictions.npz`: the saved model's outputs (`logits`, `n x num_labels`) on the scoring set
  (`rows` of split `split`), computed after ejection, so a reload can be checked against them.
"""

from __future__ import annotations

import json
import shutil
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


def save_model(model: Any, handle: PEFTHandle, out_dir: Path, changed_backbone: list[str]) -> None:
    """Save the trained modules of `handle`: adapters + head, or head + changed backbone tensors.

    Adapters and head use adapters' default torch format: safetensors refuses prefix-tuning, whose
    one pool is referenced from every layer (shared tensors).
    """
    adapters_dir = out_dir / ADAPTERS_DIR
    clear(out_dir)  # a previous run's adapters would otherwise mix with these
    if handle.adapter_names:
        model.save_adapter_setup(str(adapters_dir), handle.setup, head_setup=HEAD_NAME)
    else:
        (adapters_dir / HEAD_NAME).mkdir(parents=True, exist_ok=True)
        model.save_head(str(adapters_dir / HEAD_NAME), HEAD_NAME)
    if changed_backbone:
        from safetensors.torch import save_file

        params = dict(model.named_parameters())
        save_file({n: params[n].detach().cpu().contiguous() for n in changed_backbone}, str(out_dir / BACKBONE_FILE))


def load_trial(out_dir: str | Path, model: Any = None, *, device: str = "cpu") -> Any:
    """The trained model of a trial folder, ready to predict: backbone + adapters (stacked) + head.

    `model`: a freshly loaded backbone to load into (default: the one named in `setup.json`).
    Uses adapters' own `load_adapter` and `load_head`, then upgrades parallel adapters so that
    serial and parallel ones compose at the FFN (`enable_ffn_branches`).
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
    names = [model.load_adapter(str(out_dir / ADAPTERS_DIR / name)) for name in setup["adapters"]]
    enable_ffn_branches(model)
    if (out_dir / BACKBONE_FILE).is_file():
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(out_dir / BACKBONE_FILE)), strict=False)
    register_heads(model)  # a mean-pooling head loads as itself, not as adapters' first-token head
    model.load_head(str(out_dir / ADAPTERS_DIR / HEAD_NAME))
    if names:
        model.set_active_adapters(Stack(*names))
    model.active_head = HEAD_NAME
    model.to(device)
    model.eval()
    return model


def load_predictions(out_dir: str | Path) -> tuple[str, np.ndarray, np.ndarray]:
    """(split name, rows, logits `n x num_labels`) saved with a trial."""
    with np.load(Path(out_dir) / "predictions.npz") as data:
        return str(data["split"]), data["rows"], data["logits"]
