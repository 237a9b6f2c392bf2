"""LoRA trials export as Hugging Face `peft` adapters that reproduce the trial's predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autopeft import models
from autopeft.engine import Engine, Fidelity, load_predictions
from autopeft.errors import UserError
from autopeft.peft.hf_export import export_peft, load_peft_export
from autopeft.space import PEFTConfig
from autopeft.tasks import View, load_glue

FAST = Fidelity(epochs=1, max_train_samples=32, max_eval_samples=16, batch_size=16, lr=3e-3)
LORA = PEFTConfig(lora=4, lora_layers=(0, 2, 3))
ATOL = 1e-5


@pytest.fixture(scope="module", params=["tiny-bert", "tiny-roberta"])
def engine(request, glue_dir):
    return Engine(request.param, load_glue("rte", glue_dir), progress=False)


def _plain_transformers_backbone(model_name: str, num_labels: int):
    """What a user without autopeft builds: the backbone as `AutoModelForSequenceClassification`.

    A tiny model has no checkpoint to `from_pretrained`, so its seeded weights are copied in.
    """
    from transformers import AutoModelForSequenceClassification

    spec = models.resolve(model_name)
    config = models.load_config(spec)
    config.num_labels = num_labels
    base = AutoModelForSequenceClassification.from_config(config)
    backbone = models.load_adapter_model(spec).base_model.state_dict()
    base.base_model.load_state_dict({k: backbone[k] for k in base.base_model.state_dict()})
    return base.eval()


@pytest.mark.parametrize("item", [LORA, "lora"], ids=["lora-some-layers", "method-lora"])
def test_peft_from_pretrained_predicts_like_the_trial(engine, tmp_path, item):
    from peft import PeftModel

    assert engine.run_trial(item, FAST, seed=2, out_dir=tmp_path / "trial").ok
    out = export_peft(tmp_path / "trial", tmp_path / "peft")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in out.iterdir()}
    assert not list(out.rglob("*.bin"))
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == engine.model_name  # the name, not this machine's path
    config = json.loads((out / "adapter_config.json").read_text())
    rank = LORA.lora if item is LORA else 8
    assert (config["peft_type"], config["r"], config["lora_alpha"]) == ("LORA", rank, rank)
    assert sorted(config["target_modules"]) == ["query", "value"]
    assert config["layers_to_transform"] == ([0, 2, 3] if item is LORA else [0, 1, 2, 3])

    split, rows, logits = load_predictions(tmp_path / "trial")
    base = _plain_transformers_backbone(engine.model_name, engine.task.num_labels)
    peft_model = PeftModel.from_pretrained(base, str(out))
    again = engine.logits(View(split, rows), model=peft_model)
    np.testing.assert_allclose(again, logits, atol=ATOL, rtol=0)
    np.testing.assert_allclose(engine.logits(View(split, rows), model=load_peft_export(out)), logits, atol=ATOL, rtol=0)


def test_mean_pooling_head_loads_with_load_peft_export(engine, tmp_path):
    assert engine.run_trial(LORA, FAST.replace(pooling="mean"), seed=2, out_dir=tmp_path / "trial").ok
    out = export_peft(tmp_path / "trial", tmp_path / "peft")
    assert json.loads((out / "autopeft_export.json").read_text())["head"] == "mean_pool"
    assert (out / "head.safetensors").is_file()
    split, rows, logits = load_predictions(tmp_path / "trial")
    again = engine.logits(View(split, rows), model=load_peft_export(out))
    np.testing.assert_allclose(again, logits, atol=ATOL, rtol=0)


REFUSED = {
    "module-serial": (PEFTConfig.shared(range(4), serial=8), "no peft equivalent"),
    "module-parallel": (PEFTConfig.shared((1, 2), parallel=4), "no peft equivalent"),
    "module-prefix": (PEFTConfig.shared(range(4), prefix=3), "position ids"),
    "module-lora+prefix": (PEFTConfig.shared(range(4), prefix=3, lora=2), "position ids"),
    "module-lora+serial": (PEFTConfig.shared(range(4), serial=8, lora=2), "no peft equivalent"),
    **{
        f"method-{m}": (m, "")
        for m in ("full", "bitfit", "pfeiffer", "houlsby", "parallel", "prefix", "mam", "unipelt")
    },
}


@pytest.mark.parametrize("item,why", list(REFUSED.values()), ids=list(REFUSED))
def test_what_peft_cannot_express_is_refused(tiny_engine, tmp_path, item, why):
    assert tiny_engine.run_trial(item, FAST, seed=2, out_dir=tmp_path / "trial").ok
    with pytest.raises(UserError, match=f"cannot export .*{why}.*only LoRA"):
        export_peft(tmp_path / "trial", tmp_path / "peft")
    assert not (tmp_path / "peft").exists()


@pytest.fixture(scope="module")
def tiny_engine(glue_dir):
    return Engine("tiny-bert", load_glue("rte", glue_dir), progress=False)


def test_export_replaces_an_earlier_export_but_no_other_folder(tiny_engine, tmp_path):
    assert tiny_engine.run_trial(LORA, FAST, seed=2, out_dir=tmp_path / "trial").ok
    export_peft(tmp_path / "trial", tmp_path / "peft")
    (tmp_path / "peft" / "stale.txt").write_text("x")
    assert "stale.txt" not in {p.name for p in export_peft(tmp_path / "trial", tmp_path / "peft").iterdir()}
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    with pytest.raises(UserError, match="not an earlier peft export"):
        export_peft(tmp_path / "trial", tmp_path / "other")
    assert (tmp_path / "other" / "keep.txt").is_file()


def test_export_needs_a_trial_folder(tmp_path):
    with pytest.raises(UserError, match="not a trial folder"):
        export_peft(tmp_path, tmp_path / "peft")
    with pytest.raises(UserError, match="not a peft export"):
        load_peft_export(tmp_path)
