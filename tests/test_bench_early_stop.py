"""`autopeft bench early-stop` end to end on a tiny model: both modes, figures, false stops, resuming."""

from __future__ import annotations

import json

import optuna
import pytest

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
    assert 0.3 <= figures["oracle_share"] <= 1  # nothing stops before the minimum share
    assert 0 <= figures["off"]["hypervolume_at_on_cpu"] <= figures["off"]["hypervolume"]
    assert "HV off at on CPU" in out[0]
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


def _finished(study, score, params, cpu, curve=(), seconds=None):
    from optuna.distributions import IntDistribution

    study.add_trial(
        optuna.trial.create_trial(
            values=[score, params],
            params={"x": 0},
            distributions={"x": IntDistribution(0, 1)},
            user_attrs={"cpu_seconds": cpu, "curve": [list(p) for p in curve], **(seconds or {})},
        )
    )


def test_oracle_stops_only_the_trials_that_end_below_the_front_at_their_size():
    from autopeft.bench.early_stop import first_stop_share, oracle_share

    study = optuna.create_study(directions=["maximize", "minimize"])
    _finished(study, 0.5, 100, 10.0)  # the first: on the front
    _finished(study, 0.4, 200, 30.0)  # below 0.5 at no more parameters: stopped
    _finished(study, 0.3, 50, 20.0)  # smaller than all before: on the front
    _finished(study, 0.6, 300, 40.0)  # above the front at its size
    assert oracle_share(study, 0.5) == (10 + 15 + 20 + 40) / 100
    assert oracle_share(study, 0.25) == (10 + 7.5 + 20 + 40) / 100
    # a stop saves only the training and scoring it cuts short, not the trial's suggestion and set-up
    slow = optuna.create_study(directions=["maximize", "minimize"])
    _finished(slow, 0.5, 100, 10.0)
    _finished(slow, 0.4, 200, 30.0, seconds={"wall_seconds": 30.0, "train_seconds": 20.0, "eval_seconds": 4.0})
    assert oracle_share(slow, 0.5) == pytest.approx((10 + 30 * (1 - 0.5 * 0.8)) / 40)
    on = optuna.create_study(directions=["maximize", "minimize"])
    _finished(on, 0.5, 100, 1.0, curve=[(0.25, 0.1), (0.5, 0.2), (0.75, 0.3), (1.0, 0.4)])
    assert first_stop_share(on, 0.5) == 0.5 and first_stop_share(on, 0.3) == 0.5
    assert first_stop_share(on, 0.8) is None  # only the end is left: nothing can stop


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


def test_false_stops_are_checked_on_a_seeded_random_draw_not_the_first_stops():
    from autopeft.bench.early_stop import false_stop_sample

    stopped = list(range(3, 103))
    sample = false_stop_sample(stopped, 10, seed=0)
    assert sample == false_stop_sample(stopped, 10, seed=0) == sorted(sample)  # the same draw on a rerun
    assert len(set(sample)) == 10 and set(sample) <= set(stopped)
    assert sample != stopped[:10] and max(sample) > 30  # reaches the later stops, made with more curves
    assert false_stop_sample(stopped, 10, seed=1) != sample
    assert false_stop_sample(stopped[:4], 10, seed=0) == stopped[:4]  # fewer stops than the sample: all


def test_the_off_search_is_read_at_the_on_searches_cpu_hours():
    from autopeft.bench.early_stop import hypervolume_at

    curve = [(0.1, 0.2), (0.3, 0.4), (0.3, 0.45), (0.8, 0.6)]
    assert hypervolume_at(curve, 0.05) == 0.0  # nothing spent yet: nothing found
    assert hypervolume_at(curve, 0.3) == 0.45  # the last trial finished by then
    assert hypervolume_at(curve, 0.5) == 0.45 and hypervolume_at(curve, 2.0) == 0.6
