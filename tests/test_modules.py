"""The table of module kinds: it agrees with PEFTConfig, the adapters factories, the learning-rate
families and the vector layout, so that a kind is declared in one place."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import pytest

from autopeft.engine.fidelity import DEFAULT_LRS
from autopeft.methods import FAMILIES
from autopeft.modules import MODULE_KINDS, MODULES
from autopeft.params import ModelDims, layer_params, peft_params
from autopeft.space import ConfigError, PEFTConfig, SearchSpace


def test_table_order_and_names():
    assert MODULES == tuple(MODULE_KINDS) == ("serial", "parallel", "prefix", "lora")
    assert all(kind.name == name for name, kind in MODULE_KINDS.items())


def test_peft_config_fields_are_the_table_kinds():
    assert [f.name for f in fields(PEFTConfig)] == [*MODULES, *(f"{m}_layers" for m in MODULES)]


def test_every_kind_has_an_adapters_factory():
    from autopeft.peft.build import ADAPTER_FACTORIES, STACK_ORDER

    assert set(ADAPTER_FACTORIES) == set(MODULE_KINDS) and set(STACK_ORDER) == set(MODULES)
    for name, kind in MODULE_KINDS.items():
        assert ADAPTER_FACTORIES[name](32, kind.choices(32)[0], [1]).leave_out == [1]


def test_every_family_has_a_default_learning_rate():
    assert {kind.family for kind in MODULE_KINDS.values()} <= set(FAMILIES)
    assert set(DEFAULT_LRS) == set(FAMILIES)


@pytest.mark.parametrize("name", MODULES)
def test_per_layer_formula_is_the_count_of_one_layer(name):
    kind = MODULE_KINDS[name]
    dims = ModelDims("bert", 4, 64, num_heads=2, ffn_size=256, backbone_params=10**6, bias_params=10**3)
    for size in kind.choices(64):
        one = PEFTConfig(**{name: size, f"{name}_layers": (2,)})
        assert peft_params(one, dims) == layer_params(name, size, 64) == kind.params_per_layer(64, size)
    assert layer_params(name, 0, 64) == 0


@pytest.mark.parametrize("space_kind", ["paper", "extended"])
def test_layout_gives_every_coordinate_one_meaning(space_kind):
    space = SearchSpace(3, 32, space_kind)
    layout = space.layout
    assert layout.modules == tuple(m for m in MODULES if space_kind == "extended" or MODULE_KINDS[m].paper)
    size_coords = [layout.size(m) for m in layout.modules]
    bit_coords = [j for mask in layout.masks for j in mask.coords]
    assert sorted(size_coords + bit_coords) == list(range(space.dim))
    assert [space.dimensions[j].name for j in size_coords] == list(layout.modules)
    assert all(len(mask.coords) == 3 for mask in layout.masks)
    assert len(layout.masks) == (1 if space_kind == "paper" else len(layout.modules))
    assert all(m in layout.mask(m).modules for m in layout.modules)


def test_one_layer_check_for_space_and_engine():
    with pytest.raises(ConfigError, match="layer 7 does not exist; the model has 4 layers"):
        PEFTConfig.shared([0, 7], serial=8).check_layers(4)
    with pytest.raises(ConfigError, match="inserted in no layer"):
        PEFTConfig.shared([], lora=8).check_layers(4)
    with pytest.raises(ConfigError, match="no PEFT module is on"):
        PEFTConfig().check_layers(4)
    PEFTConfig.shared([0, 3], serial=5, lora=3).check_layers(4)  # sizes are the space's business


def test_module_table_imports_no_heavy_library():
    heavy = "('torch', 'transformers', 'adapters', 'botorch', 'optuna')"
    code = f"import sys, autopeft.modules; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
