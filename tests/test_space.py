"""The search space as pure data: sizes, validity, JSON and vector round trips, sampling, neighbours."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from collections import Counter

import pytest

from autopeft.modules import size_choices
from autopeft.space import ConfigError, PEFTConfig, SearchSpace


def test_size_choices_follow_h_over_powers_of_two():
    assert size_choices(384) == (1, 3, 6, 12, 24, 48, 96, 192, 384)
    assert size_choices(768) == (1, 3, 6, 12, 24, 48, 96, 192, 384, 768)
    assert size_choices(32) == (1, 2, 4, 8, 16, 32)  # floor(32/2^k) >= 1, de-duplicated
    assert size_choices(1024)[0] == 2  # 1024 / 2^9


@pytest.mark.parametrize("kind", ["paper", "extended"])
def test_json_and_vector_round_trip(kind):
    space = SearchSpace(6, 384, kind)
    rng = random.Random(1)
    for _ in range(300):
        config = space.sample(rng)
        assert space.is_valid(config)
        assert PEFTConfig.from_json(config.to_json()) == config
        assert PEFTConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
        x = space.to_vector(config)
        assert len(x) == space.dim and all(0.0 <= v <= 1.0 for v in x)
        assert space.from_vector(x) == config


def test_dimension_counts():
    assert SearchSpace(12, 768, "paper").dim == 3 + 12
    assert SearchSpace(12, 768, "extended").dim == 4 + 4 * 12


def test_paper_space_sampling_is_uniform_over_valid_configs():
    space = SearchSpace(2, 4, "paper")  # sizes {0,1,2,4} for 3 modules, 2 layer bits
    valid = [
        PEFTConfig.shared([i for i in range(2) if bits[i]], serial=s, parallel=p, prefix=x)
        for s, p, x in itertools.product((0, 1, 2, 4), repeat=3)
        for bits in itertools.product((0, 1), repeat=2)
    ]
    valid = {c for c in valid if space.is_valid(c)}
    assert len(valid) == (4**3 - 1) * (2**2 - 1)
    rng = random.Random(0)
    counts = Counter(space.sample(rng) for _ in range(20000))
    assert set(counts) == valid
    expected = 20000 / len(valid)
    assert max(abs(n - expected) for n in counts.values()) < 5 * expected**0.5


def test_validity_rules_and_messages():
    space = SearchSpace(4, 32, "paper")
    with pytest.raises(ConfigError, match="no PEFT module is on"):
        space.check(PEFTConfig.shared([0, 1]))
    with pytest.raises(ConfigError, match="inserted in no layer"):
        space.check(PEFTConfig.shared([], serial=4))
    with pytest.raises(ConfigError, match="serial size 5 is not in the space"):
        space.check(PEFTConfig.shared([0], serial=5))
    with pytest.raises(ConfigError, match="layer 7 does not exist"):
        space.check(PEFTConfig.shared([7], serial=4))
    with pytest.raises(ConfigError, match="lora is not in the paper space"):
        space.check(PEFTConfig.shared([0], lora=4))
    with pytest.raises(ConfigError, match="shares one layer mask"):
        space.check(PEFTConfig(serial=4, prefix=2, serial_layers=(0,), prefix_layers=(1,)))
    extended = SearchSpace(4, 32, "extended")
    extended.check(PEFTConfig(serial=4, lora=8, serial_layers=(0,), lora_layers=(1, 2)))
    with pytest.raises(ConfigError, match="lora size 3"):
        extended.check(PEFTConfig.shared([0], lora=3))


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"serial": 4, "layers": [0], "adapter": 2}', "unknown configuration key 'adapter'"),
        ('{"serial": -1, "layers": [0]}', "non-negative integer"),
        ('{"serial": 2.5, "layers": [0]}', "non-negative integer"),
        ('{"serial": 4, "layers": "0,1"}', "list of layer indices"),
        ("[1, 2]", "must be a JSON object"),
        ("{serial: 4}", "not valid JSON"),
    ],
)
def test_bad_json_is_named(text, message):
    with pytest.raises(ConfigError, match=message):
        PEFTConfig.from_json(text)


def test_off_module_layers_are_normalised_away():
    a = PEFTConfig(serial=4, serial_layers=(2, 0, 2), prefix=0, prefix_layers=(1,))
    b = PEFTConfig(serial=4, serial_layers=(0, 2))
    assert a == b and hash(a) == hash(b)
    assert a.to_dict() == {"serial": 4, "parallel": 0, "prefix": 0, "lora": 0, "layers": [0, 2]}


def test_per_module_masks_serialise_per_module():
    config = PEFTConfig(serial=4, lora=2, serial_layers=(0,), lora_layers=(1, 2, 3))
    data = config.to_dict()
    assert data["serial_layers"] == [0] and data["lora_layers"] == [1, 2, 3] and "layers" not in data
    assert config.describe() == "serial adapter 4 @ layers 0 + LoRA rank 2 @ layers 1-3"
    assert PEFTConfig.shared([0, 1, 2, 5], serial=24, prefix=6).describe() == (
        "serial adapter 24 + prefix 6 @ layers 0-2,5"
    )


@pytest.mark.parametrize("kind", ["paper", "extended"])
def test_neighbours_differ_in_exactly_one_coordinate(kind):
    space = SearchSpace(4, 32, kind)
    rng = random.Random(3)
    for _ in range(50):
        config = space.sample(rng)
        x = space.to_vector(config)
        neighbours = space.neighbours(config)
        assert neighbours and len(set(neighbours)) == len(neighbours) and config not in neighbours
        for other in neighbours:
            assert space.is_valid(other)
            y = space.to_vector(other)
            if kind == "paper":  # one vector per configuration: exactly one coordinate moves
                assert sum(a != b for a, b in zip(x, y, strict=True)) == 1


def test_paper_neighbourhood_size_is_complete():
    space = SearchSpace(3, 32, "paper")
    config = PEFTConfig.shared([0, 1], serial=4, parallel=8)
    n_sizes = len(space.choices("serial")) - 1
    # 3 size dimensions x (n_sizes other values) + 3 bit flips; no move makes it invalid here
    assert len(space.neighbours(config)) == 3 * n_sizes + 3


def test_space_module_imports_no_heavy_library():
    heavy = "('torch', 'transformers', 'adapters', 'botorch', 'optuna')"
    modules = "autopeft.space, autopeft.params, autopeft.methods"
    code = f"import sys, {modules}; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
