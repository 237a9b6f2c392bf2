"""Precision and devices: the fidelity knob, checks before any work, bf16 on the CPU, late loss reads, GPU sharing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from autopeft import models
from autopeft.engine import Engine, Fidelity, FidelityError, devices, loop
from autopeft.engine.tokens import encode
from autopeft.engine.workers import Job, run_jobs
from autopeft.errors import UserError
from autopeft.tasks import Split, load_glue

FAST = Fidelity(epochs=1, max_train_samples=48, max_eval_samples=24, batch_size=16, eval_batch_size=32)


@pytest.fixture(scope="module")
def rte(glue_dir):
    return load_glue("rte", glue_dir)


@pytest.fixture(scope="module")
def engine(rte):
    return Engine("tiny-bert", rte, device="cpu", progress=False)


def _one_line(err: pytest.ExceptionInfo) -> None:
    assert isinstance(err.value, UserError) and "\n" not in str(err.value)


# --- the knob ------------------------------------------------------------------------------


def test_precision_knob_parses_and_round_trips():
    assert Fidelity().precision == "fp32"
    f = Fidelity.parse("precision=bf16,epochs=2")
    assert f.precision == "bf16" and f.describe() == "epochs=2,precision=bf16"
    assert Fidelity.parse(f.describe()) == f and Fidelity.from_dict(f.to_dict()) == f
    # a fidelity stored before the knob existed reads back as the fp32 its trials ran at
    old = {k: v for k, v in f.to_dict().items() if k != "precision"}
    assert Fidelity.from_dict(old) == f.replace(precision="fp32")


@pytest.mark.parametrize("text", ["precision=fp8", "precision=BF16", "precision=1"])
def test_unknown_precision_is_one_line(text):
    with pytest.raises(FidelityError, match="precision must be one of fp32, bf16, fp16") as err:
        Fidelity.parse(text)
    _one_line(err)


# --- checks before any work ----------------------------------------------------------------


def test_device_checks_refuse_with_one_line():
    with pytest.raises(UserError, match="fp16 is not supported for training on the CPU") as err:
        devices.check_device("cpu", "fp16")
    _one_line(err)
    with pytest.raises(UserError, match="unknown precision 'fp8'"):
        devices.check_device("cpu", "fp8")
    with pytest.raises(UserError, match="--device 'gpu0' is not a device"):
        devices.check_device("gpu0", "fp32")
    devices.check_device("cpu", "fp32", jobs=4, model="tiny-bert")  # no memory estimate off CUDA
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA device is available") as err:
            devices.check_device("cuda", "bf16")
        _one_line(err)


def test_engine_refuses_fp16_on_cpu_before_writing(engine, tmp_path):
    out, before = tmp_path / "trial", engine.trials_run
    with pytest.raises(UserError, match="fp16 is not supported") as err:
        engine.run_trial("pfeiffer", FAST.replace(precision="fp16"), out_dir=out)
    _one_line(err)
    assert not out.exists() and engine.trials_run == before


def test_jobs_beyond_the_device_memory_are_refused(monkeypatch):
    need = devices.trial_bytes(models.dims_of("tiny-bert").backbone_params)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index=None: (int(2.5 * need), 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "Test GPU")
    devices.check_jobs_fit("cuda", 2, "tiny-bert")
    with pytest.raises(
        UserError, match=r"--jobs 3 needs about .* GiB on cuda:0 \(Test GPU\).*use --jobs 2 or fewer"
    ) as e:
        devices.check_jobs_fit("cuda", 3, "tiny-bert")
    _one_line(e)


def test_run_jobs_checks_before_starting_workers(glue_dir):
    jobs = [Job("rte", "pfeiffer", seed) for seed in (1, 2)]
    tasks = {"rte": {"name": "rte", "glue_dir": str(glue_dir)}}
    with pytest.raises(UserError, match="fp16 is not supported"):
        next(run_jobs(jobs, "tiny-bert", tasks, FAST.replace(precision="fp16"), workers=2, device="cpu"))


def test_workers_on_a_gpu_get_their_share_of_its_memory(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, d=None: calls.append((f, d)))
    devices.share_gpu("cpu", 4)
    devices.share_gpu("cuda", 1)
    devices.share_gpu("cuda:1", 4)
    assert calls == [(0.25, 1)]


# --- training at bf16, and late loss reads ---------------------------------------------------


def test_bf16_trial_on_the_cpu_gives_a_finite_score(engine):
    try:
        devices.check_precision("cpu", "bf16")
    except UserError as err:
        pytest.skip(f"torch refuses bf16 on this CPU: {err}")
    result = engine.run_trial("lora", FAST.replace(precision="bf16", epochs=2), seed=1)
    assert result.ok and math.isfinite(result.headline) and result.fidelity["precision"] == "bf16"
    assert all(math.isfinite(h["train_loss"]) for h in result.history)


def test_fp16_loss_scaling_path_runs(engine, monkeypatch):
    # refused on the CPU for real runs; here only the GradScaler code path is exercised
    monkeypatch.setattr("autopeft.engine.core.check_precision", lambda device, precision: None)
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            torch.ones(2, 2) @ torch.ones(2, 2)
    except RuntimeError as err:
        pytest.skip(f"no fp16 autocast on this CPU: {err}")
    result = engine.run_trial("pfeiffer", FAST.replace(precision="fp16"), seed=1)
    assert result.ok and math.isfinite(result.headline)


@pytest.mark.parametrize("every", [4, 100])
def test_losses_read_late_give_the_same_trial(engine, monkeypatch, every):
    fidelity = FAST.replace(epochs=2, max_train_samples=96)  # 6 steps an epoch
    eager = engine.run_trial("pfeiffer", fidelity, seed=5)
    monkeypatch.setattr(loop, "SYNC_EVERY", {"cpu": every})
    late = engine.run_trial("pfeiffer", fidelity, seed=5)
    assert late.history == eager.history and late.metrics == eager.metrics


@pytest.mark.parametrize("every", [1, 4])
def test_losses_read_late_still_name_the_failing_step(engine, monkeypatch, every):
    monkeypatch.setattr(loop, "SYNC_EVERY", {"cpu": every})
    layer0 = engine.model.base_model.encoder.layer[0]
    hook = layer0.register_forward_hook(lambda module, args, out: (out[0] * float("nan"), *out[1:]))
    try:
        result = engine.run_trial("lora", FAST, seed=1)
    finally:
        hook.remove()
    assert result.status == "failed" and result.reason.startswith("training loss became nan at step 1")
    diverged = engine.run_trial("pfeiffer", FAST.replace(lr=1e30, epochs=3), seed=1)
    assert diverged.status == "failed" and "became" in diverged.reason
    assert engine.run_trial("pfeiffer", FAST, seed=1).ok


# --- tokens kept on the device --------------------------------------------------------------


def test_resident_tokens_give_the_same_batches():
    tok = models.load_tokenizer(models.resolve("tiny-bert"))
    split = Split("train", ("a", "b c d e f g", "h i", "x y z"), ("p q", "r", "r s t u", "v"), (0, 1, 0, 1))
    for use_types in (True, False):
        enc = encode(split, tok, 128, use_types=use_types)
        resident = enc.resident("cpu")
        assert enc.resident("cpu") is resident  # uploaded once
        for rows in (np.array([3, 0, 1]), np.array([2]), np.arange(4)):
            host = enc.batch(rows)
            gathered = resident.batch(rows, int(enc.lengths[rows].max()))
            assert set(host) == set(gathered)
            assert all(torch.equal(host[k], gathered[k]) and host[k].dtype == gathered[k].dtype for k in host)
