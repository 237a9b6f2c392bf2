"""Issue 18: study names that stay in their folders, checks before any work, follow-ups that inherit the
search's regime, read-only commands that create nothing, and exported trial folders that travel."""

from __future__ import annotations

import json
import shutil

import numpy as np
import optuna
import pytest
from adapters.composition import Stack

from autopeft import models
from autopeft.cli import main
from autopeft.engine import Engine, Fidelity, load_predictions, load_trial
from autopeft.engine.saving import make_portable
from autopeft.errors import ConfigError, UserError
from autopeft.search.followup import final_fidelity
from autopeft.search.record import SamplerSettings, StudyError, StudyRecord, TaskArgs, check_study_name
from autopeft.search.storage import create_or_continue, open_storage
from autopeft.space import PEFTConfig
from autopeft.tasks import View, load_glue

FAST = Fidelity(epochs=2, max_train_samples=48, max_eval_samples=24, batch_size=16, lr=3e-3)


@pytest.mark.parametrize("name", ["../../escape", "/abs", "", "a" * 201, "a/b", ".x", "a..b", "a b", "-x"])
def test_study_names_that_leave_their_folder_are_refused(name):
    with pytest.raises(UserError, match="not a valid study name"):
        check_study_name(name)


@pytest.mark.parametrize("name", ["rte-minilm", "t", "glue-all-MiniLM-L6-v2", "a.b_c-1", "a" * 200])
def test_safe_study_names_pass(name):
    assert check_study_name(name) == name


def test_sizes_beyond_the_hidden_size_are_refused():
    PEFTConfig.shared([0], serial=32, lora=8).check_sizes(32)
    with pytest.raises(ConfigError, match="serial size 64 is larger than the model's hidden size 32"):
        PEFTConfig.shared([0], serial=64).check_sizes(32)


def test_startup_below_zero_is_refused_by_the_settings():
    with pytest.raises(UserError, match="--startup must be"):
        SamplerSettings(startup=-1)


def _record(**changes) -> StudyRecord:
    fields = dict(
        model="tiny-bert",
        task="rte",
        space="paper",
        fidelity=Fidelity(epochs=1),
        num_labels=2,
        metric="accuracy",
        sampler=SamplerSettings(name="random"),
        trials=2,
        max_params=None,
        seed=42,
        data=TaskArgs(name="rte"),
        params_ref=1000,
        params_min=10,
        backbone_params=100000,
        constant_prediction=0.5,
    )
    return StudyRecord(**{**fields, **changes})


def test_a_study_is_not_continued_with_another_sampler(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    create_or_continue("s", storage, _record())
    before = dict(optuna.load_study(study_name="s", storage=storage).user_attrs)
    with pytest.raises(StudyError, match="created with sampler 'random', not 'tpe'"):
        create_or_continue("s", storage, _record(sampler=SamplerSettings(name="tpe"), trials=5))
    assert optuna.load_study(study_name="s", storage=storage).user_attrs == before  # nothing written
    create_or_continue("s", storage, _record(trials=5))  # same sampler: continued


def test_read_only_commands_create_no_storage(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for argv in (
        ["report", "--storage", "sqlite:///typo/s.db", "--study", "t"],
        ["export", "--storage", "sqlite:///s.db", "--study", "t", "--trial", "0", "--out", "x"],
        ["retrain", "--storage", "sqlite:///s.db", "--study", "t"],
        ["worker", "--storage", "sqlite:///s.db", "--study", "t"],
    ):
        assert main(argv) == 2
        assert "does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_follow_ups_inherit_the_regime_and_change_only_the_budget():
    searched = Fidelity(epochs=1, max_train_samples=200, pooling="mean", batch_size=16, lr=2e-3, max_length=64,
                        heldout_fraction=0.2, weight_decay=0.01)  # fmt: skip
    final = final_fidelity(searched)
    assert (final.pooling, final.batch_size, final.lr, final.max_length, final.weight_decay) == (
        "mean", 16, 2e-3, 64, 0.01
    )  # fmt: skip
    assert (final.epochs, final.patience, final.max_train_samples, final.heldout_fraction) == (20, 10, None, 0.1)
    asked = final_fidelity(searched, {"epochs": 3, "max_eval_samples": 40})
    assert (asked.epochs, asked.max_eval_samples, asked.pooling) == (3, 40, "mean")


def test_retrain_uses_the_search_regime(tmp_path, monkeypatch, capsys):
    """A search at pooling=mean, batch 16, lr 2e-3 is retrained at those, with the budget asked for."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 's.db'}"
    fidelity = "epochs=1,max_train_samples=48,max_eval_samples=24,pooling=mean,batch_size=16,lr=2e-3"
    search = ["search", "--model", "tiny-bert", "--task", "rte", "--trials", "1", "--sampler", "random"]
    assert main([*search, "--fidelity", fidelity, "--storage", url, "--study", "t"]) == 0
    capsys.readouterr()
    retrain = ["retrain", "--storage", url, "--study", "t", "--top", "1", "--seeds", "1"]
    assert main([*retrain, "--fidelity", "epochs=1,max_train_samples=32", "--max-eval-samples", "24"]) == 0
    out = capsys.readouterr().out
    assert "fidelity: " in out and "pooling=mean" in out.split("fidelity: ")[1].splitlines()[0]
    stored = StudyRecord.load(optuna.load_study(study_name="t", storage=url)).retrained
    used = next(iter(stored.values()))["fidelity"]
    assert (used["pooling"], used["batch_size"], used["lr"]) == ("mean", 16, 2e-3)
    assert (used["epochs"], used["max_train_samples"], used["max_eval_samples"], used["patience"]) == (1, 32, 24, 10)


@pytest.fixture(scope="module")
def engine(glue_dir):
    return Engine("tiny-bert", load_glue("rte", glue_dir), progress=False)


def _plain_adapters_load(folder, enable: bool):
    """What a user of the adapters library alone does with an exported folder (plus, maybe, the one call)."""
    from autopeft.peft.ffn_branch import enable_ffn_branches

    setup = json.loads((folder / "setup.json").read_text())
    model = models.load_adapter_model(models.resolve(setup["model"]))
    names = [model.load_adapter(str(folder / "adapters" / n), use_safetensors=True) for n in setup["adapters"]]
    if enable:
        enable_ffn_branches(model)
    model.load_head(str(folder / "adapters" / "task"), use_safetensors=True)
    model.set_active_adapters(Stack(*names))
    model.active_head = "task"
    return model.eval()


def _trial_folder(engine, config, tmp_path):
    assert engine.run_trial(config, FAST, seed=3, out_dir=tmp_path / "trial").ok
    shutil.copytree(tmp_path / "trial", tmp_path / "export")
    return tmp_path / "export", make_portable(tmp_path / "export")


def test_serial_only_export_loads_with_adapters_alone(engine, tmp_path):
    folder, setup = _trial_folder(engine, PEFTConfig.shared([0, 2], serial=8, prefix=4), tmp_path)
    assert "enable_ffn_branches" not in setup["load"]
    split, rows, logits = load_predictions(folder)
    again = engine.logits(View(split, rows), model=_plain_adapters_load(folder, enable=False))
    assert np.array_equal(again, logits)


def test_serial_and_parallel_export_needs_the_ffn_call_and_travels(engine, tmp_path):
    folder, setup = _trial_folder(engine, PEFTConfig.shared([0, 1], serial=8, parallel=4), tmp_path)
    assert "enable_ffn_branches(model)" in setup["load"]
    split, rows, logits = load_predictions(folder)
    view = View(split, rows)
    assert np.array_equal(engine.logits(view, model=_plain_adapters_load(folder, enable=True)), logits)
    assert not np.allclose(engine.logits(view, model=_plain_adapters_load(folder, enable=False)), logits)
    assert np.array_equal(engine.logits(view, model=load_trial(folder)), logits)
    # no local path of the backbone anywhere; the head carries the task's labels
    text = "".join(p.read_text() for p in folder.rglob("*.json"))
    assert str(models.resolve("minilm").path) not in text and setup["tokenizer"] == "tiny-bert"
    head = json.loads((folder / "adapters" / "task" / "head_config.json").read_text())
    assert head["config"]["label2id"] == {"entailment": 0, "not_entailment": 1}
    assert _plain_adapters_load(folder, enable=True).get_labels_dict("task") == {0: "entailment", 1: "not_entailment"}


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "glue", "--model", "tiny-bert", "--tasks", "rte", "--no-search", "--out", "{dir}", "{storage}"],
        ["bench", "glue", "--model", "tiny-bert", "--no-search", "--out", "{file}/RESULTS.md", "{storage}"],
        ["bench", "glue", "--report-only", "--out", "{file}/RESULTS.md", "{storage}"],
        ["bench", "modules", "--tasks", "rte", "--out", "{dir}"],
        ["bench", "modules", "--tasks", "rte", "--out", "{file}/runs.csv"],
        ["bench", "make-pool", "--task", "rte", "--out", "{dir}"],
        ["bench", "early-stop", "--tasks", "rte", "--plot", "{file}/early-stop.png", "{storage}"],
    ],
)
def test_a_results_file_that_cannot_be_written_is_refused_before_any_work(argv, tmp_path, monkeypatch, capsys):
    """The page, CSV or plot is written after hours of training: a folder in its place, or a file where its
    folder should be, is refused first, and no study is created."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").write_text("a file, not a folder")
    storage = ["--storage", f"sqlite:///{tmp_path / 'b.db'}"]
    args = [a.format(dir=tmp_path, file=tmp_path / "taken") for a in argv if a != "{storage}"]
    assert main(args + storage * ("{storage}" in argv)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ("is a folder, not a file" in err or "is a file, not a folder" in err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
