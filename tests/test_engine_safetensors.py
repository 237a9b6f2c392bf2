"""Trial folders hold no pickle: every module kind and method saves as safetensors and reloads exactly.

Folders written before (adapters' torch `.bin` files) still load.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from adapters.composition import Stack

from autopeft.engine import Engine, Fidelity, load_predictions, load_trial
from autopeft.methods import METHODS
from autopeft.space import PEFTConfig
from autopeft.tasks import View, load_glue

FAST = Fidelity(epochs=1, max_train_samples=32, max_eval_samples=16, batch_size=16, lr=3e-3)
KINDS = {
    "serial": PEFTConfig.shared(range(4), serial=8),
    "parallel": PEFTConfig(parallel=4, parallel_layers=(1, 2)),
    "prefix": PEFTConfig(prefix=3, prefix_layers=(0, 3)),
    "lora": PEFTConfig(lora=2, lora_layers=(0, 2, 3)),
    # serial + parallel at one FFN (layer 1), prefix and LoRA on other layers
    "mixed": PEFTConfig(
        serial=8,
        serial_layers=(1, 3),
        parallel=4,
        parallel_layers=(0, 1),
        prefix=2,
        prefix_layers=(1, 2),
        lora=2,
        lora_layers=(1,),
    ),
}
ITEMS = {**{f"module-{k}": c for k, c in KINDS.items()}, **{f"method-{name}": name for name in METHODS}}


def pickles_in(folder: Path) -> list[str]:
    """Every file under `folder` (recursively) that is or contains a pickle."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if data[:1] == b"\x80" or _zip_has_pickle(data):
            found.append(str(path.relative_to(folder)))
    return found


def _zip_has_pickle(data: bytes) -> bool:
    # torch's zip checkpoints carry `data.pkl`; an .npz member of dtype object is a pickle too.
    if not zipfile.is_zipfile(io.BytesIO(data)):
        return False
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            if name.endswith(".pkl"):
                return True
            if name.endswith(".npy"):
                with archive.open(name) as member:
                    read_header = {(1, 0): np.lib.format.read_array_header_1_0}.get(
                        np.lib.format.read_magic(member), np.lib.format.read_array_header_2_0
                    )
                    _, _, dtype = read_header(member)
                    if dtype.hasobject:
                        return True
    return False


@pytest.fixture(scope="module")
def engine(glue_dir):
    return Engine("tiny-bert", load_glue("rte", glue_dir), progress=False)


@pytest.mark.parametrize("item", list(ITEMS.values()), ids=list(ITEMS))
def test_saved_as_safetensors_and_reloaded_exactly(engine, tmp_path, item):
    assert engine.run_trial(item, FAST, seed=3, out_dir=tmp_path).ok
    assert pickles_in(tmp_path) == []
    weights = sorted(p.name for p in (tmp_path / "adapters").rglob("*") if p.suffix in (".bin", ".safetensors"))
    assert weights and all(name.endswith(".safetensors") for name in weights)
    split, rows, logits = load_predictions(tmp_path)  # allow_pickle=False
    assert np.array_equal(engine.logits(View(split, rows), model=load_trial(tmp_path)), logits)


def test_the_pickle_check_finds_torch_files_and_object_arrays(tmp_path):
    import torch

    torch.save({"w": torch.zeros(2)}, tmp_path / "a.bin")
    np.savez(tmp_path / "b.npz", names=np.array([{"x": 1}], dtype=object))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.pkl").write_bytes(__import__("pickle").dumps([1, 2]))
    np.savez(tmp_path / "ok.npz", split="dev", rows=np.arange(3))
    assert pickles_in(tmp_path) == ["a.bin", "b.npz", "sub/c.pkl"]


def _resave_as_torch_bin(out_dir: Path) -> None:
    """Rewrite the adapters folder as the code before safetensors did: adapters' torch `.bin` files."""
    setup = json.loads((out_dir / "setup.json").read_text())
    model = load_trial(out_dir)
    shutil.rmtree(out_dir / "adapters")
    if setup["adapters"]:
        model.save_adapter_setup(str(out_dir / "adapters"), Stack(*setup["adapters"]), head_setup="task")
    else:
        (out_dir / "adapters" / "task").mkdir(parents=True)
        model.save_head(str(out_dir / "adapters" / "task"), "task")


@pytest.mark.parametrize(
    "item", [KINDS["mixed"], "prefix", "unipelt", "bitfit"], ids=["mixed", "prefix", "unipelt", "bitfit"]
)
def test_old_torch_bin_folders_still_load(engine, tmp_path, item):
    assert engine.run_trial(item, FAST, seed=3, out_dir=tmp_path).ok
    _resave_as_torch_bin(tmp_path)
    assert not list((tmp_path / "adapters").rglob("*.safetensors"))
    assert pickles_in(tmp_path)  # the old format is torch pickles
    split, rows, logits = load_predictions(tmp_path)
    assert np.array_equal(engine.logits(View(split, rows), model=load_trial(tmp_path)), logits)


def test_prefix_tuning_is_saved_once_not_once_per_layer(engine, tmp_path):
    from safetensors import safe_open

    assert engine.run_trial(KINDS["prefix"], FAST, seed=3, out_dir=tmp_path).ok
    with safe_open(str(tmp_path / "adapters" / "autopeft_prefix" / "adapter.safetensors"), "pt") as f:
        names = list(f.keys())
    assert len(names) == 1 and ".pool." not in names[0]
