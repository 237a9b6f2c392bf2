"""Fidelity: parsing, validation and round trips; default learning rates by method family."""

from __future__ import annotations

import pytest

from autopeft.engine import DEFAULT_LRS, Fidelity, FidelityError, family_of
from autopeft.errors import UserError
from autopeft.methods import METHODS
from autopeft.space import PEFTConfig


def test_parse_sets_only_the_named_knobs():
    f = Fidelity.parse("epochs=1,max_train_samples=2000")
    assert (f.epochs, f.max_train_samples) == (1, 2000)
    assert f.replace(epochs=1, max_train_samples=None) == Fidelity()
    assert Fidelity.parse(" lr = 1e-4 , patience=3 ,").lr == 1e-4
    assert Fidelity.parse("max_train_samples=2_000").max_train_samples == 2000
    assert Fidelity.parse("max_steps=none", Fidelity(max_steps=5)).max_steps is None
    assert Fidelity.parse("", Fidelity(epochs=3)).epochs == 3
    assert Fidelity.parse("epochs=2", Fidelity.paper_final()).patience == 10


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epochs", "not of the form name=value"),
        ("epochs=", "not of the form name=value"),
        ("=3", "not of the form name=value"),
        ("epoch=1", "unknown fidelity 'epoch'; known: epochs, max_steps"),
        ("epochs=one", "epochs='one' is not a number"),
        ("epochs=1.5", "epochs must be a whole number"),
        ("epochs=0", "epochs must be positive"),
        ("epochs=1,epochs=2", "epochs is given twice"),
        ("batch_size=none", "batch_size cannot be none"),
        ("lr=-1", "lr must be positive"),
        ("lr=nan", "lr must be finite"),
        ("train_fraction=1.5", r"train_fraction must be in \(0, 1\]"),
        ("heldout_fraction=0.9", r"heldout_fraction must be in \(0, 0.5\]"),
        ("max_train_samples=10,train_fraction=0.5", "not both"),
        ("warmup_ratio=1", r"warmup_ratio must be in \[0, 1\)"),
    ],
)
def test_malformed_strings_are_user_errors(text, message):
    with pytest.raises(FidelityError, match=message) as err:
        Fidelity.parse(text)
    assert isinstance(err.value, UserError) and "\n" not in str(err.value)


def test_round_trips():
    f = Fidelity(epochs=3, max_train_samples=500, lr=3e-4, patience=2, max_eval_samples=100)
    assert Fidelity.from_dict(f.to_dict()) == f
    assert Fidelity.parse(f.describe()) == f
    assert Fidelity().describe() == "defaults"
    assert Fidelity.paper_final().describe() == "epochs=20,patience=10"
    with pytest.raises(FidelityError, match="unknown fidelity 'speed'"):
        Fidelity.from_dict({"speed": 1})
    with pytest.raises(FidelityError, match="must be int"):
        Fidelity(epochs=1.0)
    assert Fidelity(lr=1).lr == 1.0  # an int where a float is wanted is fine


def test_default_learning_rates_cover_every_family():
    assert set(DEFAULT_LRS) == {m.family for m in METHODS.values()}
    assert DEFAULT_LRS["adapter"] == 1e-4 and DEFAULT_LRS["full"] == 2e-5
    assert family_of(METHODS["lora"]) == "lora"
    assert family_of(PEFTConfig.shared([0], serial=8, parallel=4)) == "adapter"
    assert family_of(PEFTConfig.shared([0], prefix=8)) == "prefix"
    assert family_of(PEFTConfig.shared([0], lora=8)) == "lora"
    assert family_of(PEFTConfig.shared([0], serial=8, prefix=4)) == "mixed"


def test_pooling_knob():
    assert Fidelity.parse("pooling=mean").pooling == "mean" and Fidelity().pooling == "cls"
    with pytest.raises(FidelityError, match="pooling must be one of cls, mean"):
        Fidelity.parse("pooling=max")
    # a fidelity stored before the knob existed reads back with the default the trials used
    old = {k: v for k, v in Fidelity().to_dict().items() if k != "pooling"}
    assert Fidelity.from_dict(old) == Fidelity()
