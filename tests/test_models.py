"""Model resolution, dims from the config, other architectures through local folders, clear errors."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
import torch

from autopeft import models
from autopeft.peft.verify import first_mismatch
from autopeft.space import SearchSpace

TINY = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=48, vocab_size=30522)


def _tiny_folder(tmp_path, model_type: str):
    """Save a tiny random model of `model_type` with MiniLM's tokenizer as a local HF folder."""
    from transformers import CONFIG_MAPPING, AutoModel

    kwargs = dict(TINY)
    if model_type == "distilbert":
        kwargs = dict(dim=32, n_layers=3, n_heads=4, hidden_dim=48, vocab_size=30522)
    elif model_type == "xlm-roberta":
        kwargs.update(pad_token_id=0, max_position_embeddings=130)
    elif model_type == "deberta-v2":
        kwargs.update(
            max_position_embeddings=128, relative_attention=True, position_buckets=16, max_relative_positions=64
        )
    config = CONFIG_MAPPING[model_type](**kwargs)
    torch.manual_seed(0)
    folder = tmp_path / model_type
    AutoModel.from_config(config).save_pretrained(folder, safe_serialization=True)
    models.load_tokenizer(models.resolve("minilm")).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("model_type", ["bert", "roberta", "distilbert", "deberta-v2", "xlm-roberta"])
def test_local_folder_of_each_architecture(tmp_path, model_type):
    folder = _tiny_folder(tmp_path, model_type)
    spec = models.resolve(str(folder))
    config = models.load_config(spec)
    dims = models.dims_from_config(config)
    assert (dims.num_layers, dims.hidden_size, dims.num_heads, dims.ffn_size) == (3, 32, 4, 48)
    model = models.load_adapter_model(spec, config)
    rng = random.Random(0)
    configs = [SearchSpace(3, 32, kind).sample(rng) for kind in ("paper", "extended") for _ in range(15)]
    assert first_mismatch(model, dims, configs, num_labels=2) is None


def test_minilm_dims_come_from_its_config():
    dims = models.dims_of("minilm")
    assert (dims.model_type, dims.num_layers, dims.hidden_size, dims.num_heads, dims.ffn_size) == (
        "bert",
        6,
        384,
        12,
        1536,
    )
    assert 22_000_000 < dims.backbone_params < 23_000_000  # all-MiniLM-L6-v2 has 22.7M parameters


@pytest.mark.parametrize(
    "name, message",
    [
        ("./no/such/folder", "does not exist"),
        ("a/b/c", "does not exist"),
        ("", "does not exist"),
    ],
)
def test_bad_model_names(name, message):
    with pytest.raises(models.ModelError, match=message):
        models.resolve(name)


def test_hub_id_fails_with_one_clear_line():
    spec = models.resolve("bert-base-uncased")
    with pytest.raises(models.ModelError, match=r"cannot load model 'bert-base-uncased' from the Hugging Face hub"):
        models.load_config(spec)


def test_folder_without_config(tmp_path):
    with pytest.raises(models.ModelError, match=r"has no config\.json"):
        models.resolve(str(tmp_path))


def test_import_and_help_stay_light():
    heavy = "('torch', 'transformers', 'adapters', 'botorch', 'optuna', 'jax')"
    code = (
        f"import sys, autopeft.cli; autopeft.cli.build_parser(); print(sorted(m for m in {heavy} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
