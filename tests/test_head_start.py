"""The fresh head starts at the constant prediction (`head_start=prior`) or at adapters' init (`zero`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autopeft.engine import Engine, Fidelity
from autopeft.engine.fidelity import FidelityError
from autopeft.peft import heads
from autopeft.space import PEFTConfig
from autopeft.tasks import load_task


def test_the_knob_parses_checks_and_reads_old_records_as_zero():
    assert Fidelity().head_start == "prior"
    assert Fidelity.parse("head_start=zero").head_start == "zero"
    with pytest.raises(FidelityError, match="head_start must be one of prior, zero"):
        Fidelity.parse("head_start=mean")
    stored = Fidelity().to_dict()
    del stored["head_start"]  # a study written before the knob: its trials trained from zero
    assert Fidelity.from_dict(stored).head_start == "zero"
    assert Fidelity.from_dict(Fidelity().to_dict()) == Fidelity()


def test_prior_outputs_are_the_training_subsets_mean_or_log_frequencies(glue_dir):
    stsb = load_task("stsb", glue_dir=str(glue_dir))
    plan = Fidelity(max_train_samples=200).plan(stsb, "search")
    labels = np.asarray(stsb.train.labels)[plan.train.indices]
    assert stsb.prior_outputs(plan) == pytest.approx([labels.mean()], rel=1e-6)
    rte = load_task("rte", glue_dir=str(glue_dir))
    plan = Fidelity(max_train_samples=200).plan(rte, "search")
    counts = np.bincount(np.asarray(rte.train.labels)[plan.train.indices], minlength=2) + 1.0
    prior = rte.prior_outputs(plan)
    assert prior == pytest.approx(np.log(counts / counts.sum()), rel=1e-6)
    assert np.argmax(prior) == np.argmax(counts)  # it predicts the majority class, as the floor does


def test_a_started_head_predicts_its_outputs_for_any_input(tiny_bert):
    model = tiny_bert.model
    heads.add_head(model, "probe", num_labels=1, pooling="mean")
    heads.start_head_at(model, "probe", [2.7])
    model.eval()
    with torch.no_grad():
        ids = torch.randint(5, 100, (4, 12))
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), head="probe").logits
    assert out.squeeze(1).numpy() == pytest.approx(np.full(4, 2.7), abs=0.1)  # small initial weights
    with pytest.raises(ValueError, match="has 1 outputs, got 2"):
        heads.start_head_at(model, "probe", [0.0, 1.0])
    model.delete_head("probe")


@pytest.mark.parametrize("start", ["prior", "zero"])
def test_the_engine_starts_the_head_as_the_fidelity_says(glue_dir, monkeypatch, start):
    started: list[np.ndarray] = []
    real = heads.start_head_at
    monkeypatch.setattr("autopeft.engine.core.start_head_at", lambda m, n, o: (started.append(o), real(m, n, o)))
    task = load_task("stsb", glue_dir=str(glue_dir))
    engine = Engine("tiny-bert", task, progress=False)
    fidelity = Fidelity(max_train_samples=16, max_eval_samples=8, batch_size=8, lr=1e-3, head_start=start)
    assert engine.run_trial(PEFTConfig.shared([0], serial=4), fidelity, seed=0, mode="search").ok
    expected = [task.prior_outputs(fidelity.plan(task, "search"))] if start == "prior" else []
    assert [list(o) for o in started] == [list(o) for o in expected]
