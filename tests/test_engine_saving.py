"""A trial folder: metrics, configuration, and adapters that adapters' own loaders reload to identical predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from adapters.composition import Stack

from autopeft import models
from autopeft.engine import Engine, Fidelity, load_predictions, load_trial
from autopeft.errors import UserError
from autopeft.peft.ffn_branch import enable_ffn_branches
from autopeft.space import PEFTConfig
from autopeft.tasks import View, load_glue

FAST = Fidelity(epochs=2, max_train_samples=48, max_eval_samples=24, batch_size=16, lr=3e-3)
ALL = PEFTConfig.shared(range(4), serial=8, parallel=4, prefix=4, lora=2)
PARTIAL = PEFTConfig(serial=8, serial_layers=(1, 3), parallel=16, parallel_layers=(0, 1), prefix=2, prefix_layers=(2,))


@pytest.fixture(scope="module")
def engine(glue_dir):
    return Engine("tiny-bert", load_glue("rte", glue_dir), progress=False)


def _reload_with_adapters_api(out_dir):
    """What a user of the adapters library does with a trial folder."""
    setup = json.loads((out_dir / "setup.json").read_text())
    model = models.load_adapter_model(models.resolve(setup["model"]))
    names = [model.load_adapter(str(out_dir / "adapters" / name), use_safetensors=True) for name in setup["adapters"]]
    enable_ffn_branches(model)
    model.load_head(str(out_dir / "adapters" / "task"), use_safetensors=True)
    model.set_active_adapters(Stack(*names))
    model.active_head = "task"
    return model


@pytest.mark.parametrize(
    "item",
    [ALL, PARTIAL, "prefix", "mam", "unipelt", "houlsby", "lora"],
    ids=["all-modules", "partial-layers", "prefix", "mam", "unipelt", "houlsby", "lora"],
)
def test_reloaded_adapters_predict_identically(engine, tmp_path, item):
    result = engine.run_trial(item, FAST, seed=5, out_dir=tmp_path)
    assert result.ok
    split, rows, logits = load_predictions(tmp_path)
    reloaded = _reload_with_adapters_api(tmp_path)
    again = engine.logits(View(split, rows), model=reloaded)
    assert np.array_equal(again, logits)
    # the saved state is the best evaluation's: it scores what the trial reported
    labels = np.asarray(engine.task.split(split).labels)[rows]
    assert engine.task.score(again.argmax(axis=1), labels) == result.metrics


@pytest.mark.parametrize("method", ["full", "bitfit"])
def test_backbone_methods_reload_with_load_trial(engine, tmp_path, method):
    assert engine.run_trial(method, FAST, seed=5, out_dir=tmp_path).ok
    assert (tmp_path / "backbone.safetensors").is_file()
    split, rows, logits = load_predictions(tmp_path)
    assert np.array_equal(engine.logits(View(split, rows), model=load_trial(tmp_path)), logits)


def test_trial_folder_contents(engine, tmp_path):
    result = engine.run_trial(ALL, FAST, seed=5, out_dir=tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text()) == result.to_dict()
    assert PEFTConfig.from_json((tmp_path / "config.json").read_text()) == ALL
    setup = json.loads((tmp_path / "setup.json").read_text())
    assert setup["adapters"] == ["autopeft_parallel", "autopeft_serial", "autopeft_prefix", "autopeft_lora"]
    assert setup["label_names"] == ["entailment", "not_entailment"] and setup["max_length"] == 128
    assert (tmp_path / "adapters" / "adapter_setup.json").is_file()
    prefix_config = json.loads((tmp_path / "adapters" / "autopeft_prefix" / "adapter_config.json").read_text())
    assert prefix_config["config"]["flat"] is True  # saved as deployed: the prefixes, not the MLP
    assert load_trial(tmp_path).active_head == "task"


def test_saving_again_replaces_the_previous_adapters(engine, tmp_path):
    engine.run_trial(ALL, FAST, seed=5, out_dir=tmp_path)
    engine.run_trial("lora", FAST, seed=5, out_dir=tmp_path)
    assert sorted(p.name for p in (tmp_path / "adapters").iterdir()) == ["adapter_setup.json", "autopeft_lora", "task"]
    split, rows, logits = load_predictions(tmp_path)
    assert np.array_equal(engine.logits(View(split, rows), model=load_trial(tmp_path)), logits)


def test_load_trial_needs_a_trial_folder(tmp_path):
    with pytest.raises(UserError, match="not a trial folder"):
        load_trial(tmp_path)


@pytest.mark.slow
def test_minilm_save_and_reload(glue_dir, tmp_path):
    engine = Engine("minilm", load_glue("rte", glue_dir), progress=False)
    fidelity = Fidelity(epochs=1, max_train_samples=64, max_eval_samples=32, max_length=64)
    result = engine.run_trial(ALL.replace(serial=24, parallel=48, prefix=4, lora=4, serial_layers=range(6),
                              parallel_layers=range(6), prefix_layers=range(6), lora_layers=range(6)),
                              fidelity, seed=1, out_dir=tmp_path)  # fmt: skip
    assert result.ok and 0 <= result.headline <= 1
    split, rows, logits = load_predictions(tmp_path)
    reloaded = _reload_with_adapters_api(tmp_path)
    assert np.array_equal(engine.logits(View(split, rows), model=reloaded, max_length=64), logits)


def test_a_failed_trial_leaves_no_earlier_adapters(engine, tmp_path):
    assert engine.run_trial("lora", FAST, seed=5, out_dir=tmp_path).ok
    failed = engine.run_trial("lora", FAST.replace(lr=1e30, epochs=3), seed=5, out_dir=tmp_path)
    assert failed.status == "failed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "metrics.json"]
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("item", [PARTIAL, "prefix"], ids=["partial-layers", "prefix"])
def test_mean_pooling_head_reloads_as_itself(engine, tmp_path, item):
    from autopeft.peft.heads import register_heads

    result = engine.run_trial(item, FAST.replace(pooling="mean"), seed=5, out_dir=tmp_path)
    assert result.ok and result.fidelity["pooling"] == "mean"
    split, rows, logits = load_predictions(tmp_path)
    assert np.array_equal(engine.logits(View(split, rows), model=load_trial(tmp_path)), logits)
    setup = json.loads((tmp_path / "setup.json").read_text())
    model = models.load_adapter_model(models.resolve(setup["model"]))
    names = [model.load_adapter(str(tmp_path / "adapters" / name), use_safetensors=True) for name in setup["adapters"]]
    enable_ffn_branches(model)
    register_heads(model)  # adapters' loader needs the custom head type registered
    model.load_head(str(tmp_path / "adapters" / "task"), use_safetensors=True)
    model.set_active_adapters(Stack(*names))
    model.active_head = "task"
    assert np.array_equal(engine.logits(View(split, rows), model=model), logits)


def test_every_trial_folder_names_the_backbone_not_this_machines_path(engine, tmp_path):
    """Search artifacts and `train --out` folders travel too, not only exports: no local path in any JSON."""
    assert engine.run_trial(PEFTConfig.shared([0], serial=4), FAST, seed=0, out_dir=tmp_path).ok
    setup = json.loads((tmp_path / "setup.json").read_text())
    assert setup["model"] == setup["tokenizer"] == "tiny-bert" and "load" in setup
    texts = [p.read_text() for p in tmp_path.rglob("*.json")]
    assert texts and not any(str(models.resolve("tiny-bert").tokenizer_path) in t for t in texts)
