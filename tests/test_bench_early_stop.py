"""`autopeft bench early-stop` end to end on a tiny model: both modes, figures, false stops, resuming."""

from __future__ import annotations

import json

import optuna

from autopeft.cli import main


def test_both_modes_side_by_side_then_resume(glue_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'es.db'}"
    argv = ["bench", "early-stop", "--model", "tiny-bert", "--glue-dir", str(glue_dir), "--tasks", "rte"]
    argv += ["--seeds", "0", "--trials", "5", "--sampler", "random", "--min-share", "0.3", "--storage", url]
    argv += ["--fidelity", "epochs=3,max_train_samples=64,max_eval_samples=32,batch_size=16", "--plot", "es.png"]
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(out[-1])["rte"]
    assert figures["off"]["cpu_hours"] > 0 and figures["on"]["cpu_hours"] > 0
    assert figures["checked"] == min(5, figures["stopped"]) and 0 <= figures["false_stops"] <= figures["checked"]
    assert (tmp_path / "es.png").stat().st_size > 0
    for mode in ("off", "on"):
        study = optuna.load_study(study_name=f"early-stop-rte-s0-{mode}", storage=url)
        counted = [t for t in study.trials if t.state.name == "COMPLETE" or "early_stopped" in t.user_attrs]
        assert len(counted) == 5
        if mode == "off":
            assert all(t.state.name == "COMPLETE" for t in study.trials)  # nothing stops without the rule
    trials_before = {
        m: len(optuna.load_study(study_name=f"early-stop-rte-s0-{m}", storage=url).trials) for m in ("off", "on")
    }
    assert main(argv) == 0  # run again: nothing new trains
    capsys.readouterr()
    assert trials_before == {
        m: len(optuna.load_study(study_name=f"early-stop-rte-s0-{m}", storage=url).trials) for m in ("off", "on")
    }


def test_a_single_evaluation_is_refused(glue_dir, tmp_path, capsys):
    argv = ["bench", "early-stop", "--model", "tiny-bert", "--tasks", "rte", "--fidelity", "epochs=1"]
    assert main([*argv, "--storage", f"sqlite:///{tmp_path / 'es.db'}"]) == 2
    assert "needs more than one evaluation" in capsys.readouterr().err and not (tmp_path / "es.db").exists()


def test_calibrated_fidelity_from_a_probe_storage(glue_dir, tmp_path, capsys, monkeypatch):
    """`--fidelity auto`: both modes at the probe's one-epoch choice, the "on" searches scoring within it."""
    from probes import stored_probe

    monkeypatch.chdir(tmp_path)
    probes, url = f"sqlite:///{tmp_path / 'probes.db'}", f"sqlite:///{tmp_path / 'es.db'}"
    chosen = stored_probe(probes, chosen=True, epochs=1)["chosen"]
    stored_probe(probes, chosen=False, task="cola")
    argv = ["bench", "early-stop", "--model", "tiny-bert", "--glue-dir", str(glue_dir), "--tasks", "rte,cola"]
    argv += ["--seeds", "0", "--trials", "4", "--sampler", "random", "--storage", url, "--probe-storage", probes]
    assert main([*argv, "--fidelity", "auto", "--plot", "es.png"]) == 0
    out = capsys.readouterr().out
    assert "cola   not searched: no rung" in out and json.loads(out.splitlines()[-1])["cola"]["no_signal"]
    assert (tmp_path / "es.png").is_file()  # RTE's panel
    off, on = (optuna.load_study(study_name=f"early-stop-rte-s0-{m}", storage=url) for m in ("off", "on"))
    assert off.user_attrs["fidelity"] == chosen and on.user_attrs["fidelity"] == {
        **chosen,
        "evals_per_epoch": 4,
        "interim_eval_fraction": 0.25,
    }
    assert main([*argv, "--fidelity", "auto", "--epochs", "2"]) == 2
    assert "do not also give --epochs" in capsys.readouterr().err
