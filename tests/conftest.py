"""Shared fixtures: tiny random models (hidden 32, 4 layers) built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The hub is unreachable here; offline mode makes hub look-ups fail at once instead of after retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Sleeping OpenMP waiters, as `import autopeft` sets: test modules import torch first (isort order).
if "GOMP_SPINCOUNT" not in os.environ:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("AUTOPEFT_GLUE_DIR", str((REPO.parent / "shared" / "data" / "glue").resolve()))


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    path = Path(os.environ["AUTOPEFT_GLUE_DIR"])
    if not path.is_dir():
        pytest.fail(f"GLUE data folder {path} is missing: set AUTOPEFT_GLUE_DIR")
    return path


class LoadedModel:
    """A backbone with its spec, HF config and dims, loaded once."""

    def __init__(self, name: str) -> None:
        from autopeft import models

        self.name = name
        self.spec = models.resolve(name)
        self.hf_config = models.load_config(self.spec)
        self.dims = models.dims_from_config(self.hf_config)
        self.model = models.load_adapter_model(self.spec, self.hf_config)


_CACHE: dict[str, LoadedModel] = {}


def loaded(name: str) -> LoadedModel:
    if name not in _CACHE:
        _CACHE[name] = LoadedModel(name)
    return _CACHE[name]


@pytest.fixture(params=["tiny-bert", "tiny-roberta"])
def tiny(request) -> LoadedModel:
    return loaded(request.param)


@pytest.fixture
def tiny_bert() -> LoadedModel:
    return loaded("tiny-bert")
