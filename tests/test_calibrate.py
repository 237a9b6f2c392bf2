"""`autopeft calibrate`: the ladder's figures, the choice of rung, the stored probe, bad input refused."""

from __future__ import annotations

import json
import math

import optuna
import pytest

from autopeft.cli import main
from autopeft.search.calibrate import (
    Rung,
    heldout_se,
    load_probe,
    probe_observations,
    rung_figures,
    signal_of,
)
from probes import stored_probe

TINY = ["--model", "tiny-bert", "--configs", "2", "--seeds", "0,1", "--fidelity", "max_eval_samples=48,batch_size=16"]


def test_figures_of_a_rung():
    # two configurations far apart, seeds close: a large ratio; the best well above the floor
    ratio, margin, best, se = rung_figures({"a": [0.80, 0.82], "b": [0.60, 0.62]}, 0.5, "accuracy", 400)
    assert ratio == pytest.approx(0.1414 / 0.01414, rel=1e-2) and best == pytest.approx(0.81)
    assert se == pytest.approx(math.sqrt(0.81 * 0.19 / 400 + 0.01414**2 / 2), rel=1e-2)
    assert margin == pytest.approx((0.81 - 0.5) / se)
    # seeds as far apart as the configurations: no signal
    ratio, *_ = rung_figures({"a": [0.5, 0.7], "b": [0.55, 0.65]}, 0.5, "accuracy", 400)
    assert ratio < 1
    assert heldout_se("pearson_spearman_mean", 0.0, 101) == pytest.approx(0.1)


def test_configurations_that_learnt_nothing_do_not_shrink_the_seed_noise():
    # CoLA's 7500x2 probe: one configuration learns (0.176, 0.160), three score exactly 0 on both seeds;
    # their zero std would make the noise a quarter of the one configuration's and the ratio 29.4
    scores = {"a": [0.176, 0.160], "b": [0.0, 0.0], "c": [0.0, 0.0], "d": [0.0, 0.0]}
    ratio, *_ = rung_figures(scores, 0.0, "matthews_correlation", 855)
    spread, noise = 0.084, 0.0113  # std of the means (0.168, 0, 0, 0); the learning one's seed std
    assert ratio == pytest.approx(spread / noise, rel=1e-2)
    # nothing learnt anywhere: every configuration counts, so the ratio is no signal, not a division by 0
    ratio, margin, *_ = rung_figures({"a": [0.5, 0.5], "b": [0.5, 0.5]}, 0.5, "accuracy", 400)
    assert ratio is None and margin == 0


def test_rungs_parse_and_must_grow():
    assert Rung.parse("1000x2") == Rung(1000, 2) and Rung.parse("1000x2").cost == 2000
    for bad in ("1000", "ax2", "1x1", "10x0"):
        with pytest.raises(Exception, match="ladder rung"):
            Rung.parse(bad)


def test_calibrate_runs_the_ladder_and_stores_the_probe(glue_dir, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    argv = ["calibrate", *TINY, "--task", "rte", "--glue-dir", str(glue_dir), "--storage", url]
    code = main([*argv, "--ladder", "32x1,64x1", "--max-minutes", "5"])
    assert code in (0, 1)  # a random tiny model may or may not show signal; both are reported
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert lines[0].split() == ["rung", "s/trial", "ratio", "margin", "at", "floor", "chosen"]
    summary = json.loads(lines[-1])
    assert [r["rung"] for r in summary["ladder"]][:1] == ["32x1"]
    probe = load_probe(optuna.storages.RDBStorage(url), "probe-rte-tiny-bert-paper")
    assert probe is not None and probe["task"] == "rte" and len(probe["rungs"][0]["runs"]) == 4  # 2 configs x 2 seeds
    if code == 1:
        assert summary["chosen"] is None and "no rung within 5 minutes has signal" in out.err
    else:
        assert signal_of(probe, summary["chosen"]) is True and len(probe_observations(probe)) == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--max-minutes", "0"], "--max-minutes must be a positive number"),
        (["--max-minutes", "-3"], "--max-minutes must be a positive number"),
        (["--ladder", "64x1,32x1"], "must grow"),
        (["--ladder", "64x1,32x2"], "must grow"),  # the same examples x epochs twice
        (["--ladder", "100000x9", "--max-minutes", "0.01"], "the smallest rung"),
        (["--ladder", "32x1", "--max-minutes", "0.00001"], " s, more than --max-minutes 1e-05"),  # not "0.0 minutes"
        (["--configs", "1"], "at least 2 configurations"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(glue_dir, tmp_path, capsys, extra, message):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    code = main(["calibrate", *TINY, "--task", "rte", "--glue-dir", str(glue_dir), "--storage", url, *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c.db").exists()


def test_non_numeric_cap_and_unknown_task(glue_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["calibrate", *TINY, "--task", "rte", "--max-minutes", "soon"])
    assert exit.value.code == 2
    assert main(["calibrate", *TINY, "--task", "squad", "--storage", f"sqlite:///{tmp_path / 'c.db'}"]) == 2
    assert "squad" in capsys.readouterr().err and not (tmp_path / "c.db").exists()


def test_search_fidelity_auto_reuses_a_stored_probe_and_its_runs(glue_dir, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    probe = stored_probe(url, chosen=True)
    argv = ["search", "--model", "tiny-bert", "--task", "rte", "--glue-dir", str(glue_dir), "--storage", url]
    argv += ["--trials", "3", "--sampler", "random", "--study", "s", "--fidelity", "auto", "--artifacts", str(tmp_path)]
    assert main(argv) == 0
    study = optuna.load_study(study_name="s", storage=url)
    assert (
        study.user_attrs["fidelity"] == probe["chosen"] and study.user_attrs["calibration"]["chosen"] == probe["chosen"]
    )
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 3 and [t.user_attrs.get("from_probe", False) for t in trials] == [True, True, False]
    assert trials[0].values[0] == pytest.approx(0.52)  # the mean of its seeds at the chosen rung
    from autopeft.search.report import write_report

    text = write_report(study, tmp_path / "report")["report"].read_text()
    assert "## Fidelity calibration" in text and "64x2" in text
    # a search at a fidelity the probe found without signal says so, in one line, then runs
    capsys.readouterr()
    low = ",".join(f"{k}={v}" for k, v in probe["rungs"][0]["fidelity"].items() if v is not None)
    argv2 = [*argv[:-6], "--trials", "1", "--sampler", "random", "--study", "t", "--fidelity", low]
    assert main([*argv2, "--artifacts", str(tmp_path)]) == 0
    assert "found no signal at this fidelity" in capsys.readouterr().err


def test_probe_runs_larger_than_the_budget_inform_the_search_but_are_not_its_results(glue_dir, tmp_path, capsys):
    # the probe draws from the whole space (serial 2 and serial 8 at layer 0 here); a search under a budget
    # between the two observes both, but its front, report and follow-ups hold only what it may choose
    from autopeft.search.followup import choose_rows
    from autopeft.search.loop import summary
    from autopeft.search.report import write_report
    from autopeft.search.results import completed_rows

    url = f"sqlite:///{tmp_path / 'c.db'}"
    stored_probe(url, chosen=True)
    argv = ["search", "--model", "tiny-bert", "--task", "rte", "--glue-dir", str(glue_dir), "--storage", url]
    argv += ["--trials", "3", "--sampler", "random", "--study", "s", "--fidelity", "auto", "--max-params", "400"]
    assert main([*argv, "--artifacts", str(tmp_path)]) == 0
    study = optuna.load_study(study_name="s", storage=url)
    probed = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("from_probe")]
    assert sorted(t.values[1] > 400 for t in probed) == [False, True]  # both observed, one over the budget
    rows = completed_rows(study)
    assert len(rows) == 2 and all(r.params <= 400 for r in rows)
    assert all(r.params <= 400 for r in choose_rows(study, 3, None))
    table, closing = summary(study)
    assert "serial adapter 8 " not in table and closing["complete"] == 2
    text = write_report(study, tmp_path / "report")["report"].read_text()
    assert "2 complete" in text and "1 calibration run(s) larger than the budget" in text


def test_early_stopping_at_a_one_epoch_calibrated_fidelity_scores_within_the_epoch(glue_dir, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    probe = stored_probe(url, chosen=True, epochs=1)
    argv = ["search", "--model", "tiny-bert", "--task", "rte", "--glue-dir", str(glue_dir), "--storage", url]
    argv += ["--trials", "3", "--sampler", "random", "--study", "s", "--fidelity", "auto", "--early-stop", "on"]
    assert main([*argv, "--artifacts", str(tmp_path)]) == 0
    assert "4 evaluations per epoch" in capsys.readouterr().err
    study = optuna.load_study(study_name="s", storage=url)
    assert study.user_attrs["fidelity"] == {**probe["chosen"], "evals_per_epoch": 4, "interim_eval_fraction": 0.25}
    trials = study.get_trials(deepcopy=False)
    assert [t.user_attrs.get("from_probe", False) for t in trials] == [True, True, False]
    assert len(trials[2].user_attrs["curve"]) == 4  # four evaluations in its one epoch


def test_search_fidelity_auto_without_signal_exits_1_and_bad_combinations_are_refused(glue_dir, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    stored_probe(url, chosen=False)
    argv = ["search", "--model", "tiny-bert", "--task", "rte", "--glue-dir", str(glue_dir), "--storage", url]
    argv += ["--trials", "3", "--study", "s", "--fidelity", "auto"]
    assert main(argv) == 1
    assert "has signal" in capsys.readouterr().err
    assert "s" not in {s.study_name for s in optuna.get_all_study_summaries(url)}
    assert main([*argv, "--epochs", "2"]) == 2
    assert "--fidelity auto chooses the fidelity; do not also give --epochs" in capsys.readouterr().err


def test_a_probe_stored_before_a_knob_existed_still_matches(tmp_path):
    from autopeft.engine import Fidelity
    from autopeft.search.calibrate import ladder_table, probe_observations, signal_of

    probe = stored_probe(f"sqlite:///{tmp_path / 'c.db'}", chosen=True)
    for rung in probe["rungs"]:
        del rung["fidelity"]["evals_per_epoch"]  # as the STS-B probe of data/studies/calibration.db stores them
    probe["chosen"] = probe["rungs"][1]["fidelity"]
    now = Fidelity.from_dict(probe["chosen"]).to_dict()
    assert "evals_per_epoch" in now and signal_of(probe, now) is True and len(probe_observations(probe)) == 2
    assert ladder_table(probe)[2].rstrip().endswith("yes")


def test_the_ladder_counts_runs_at_the_floor_which_have_no_seed_noise():
    from autopeft.search.calibrate import ladder_table, probe_summary

    runs = [{"config": c, "seed": s, "score": v, "params": 10} for c, s, v in
            [("a", 0, 0.0), ("a", 1, 0.0), ("b", 0, 0.2), ("b", 1, 0.3)]]  # fmt: skip
    fidelity = {"epochs": 2, "max_train_samples": 100}
    rung = {"rung": "100x2", "fidelity": fidelity, "seconds_per_trial": 1.0, "ratio": 5.0, "margin": 4.0}
    probe = {"chosen": fidelity, "rungs": [rung | {"floor": 0.0, "runs": runs}]}
    assert ladder_table(probe)[1].split() == ["100x2", "1.0", "5.0", "4.0", "2/4", "yes"]
    summary = probe_summary(probe)  # what a search study keeps: the count, not the runs
    assert "runs" not in summary["rungs"][0] and ladder_table(summary)[1].split()[4] == "2/4"
    older = {"chosen": None, "rungs": [rung | {"floor": 0.0}]}  # stored before the count was kept
    assert ladder_table(older)[1].split() == ["100x2", "1.0", "5.0", "4.0", "n/a"]


def test_early_stopping_at_a_two_epoch_calibrated_fidelity_also_scores_within_each_epoch(glue_dir, tmp_path, capsys):
    """Scored only at each epoch's end the rule's first checkpoint would be half the budget."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    probe = stored_probe(url, chosen=True, epochs=2)
    argv = ["search", "--model", "tiny-bert", "--task", "rte", "--glue-dir", str(glue_dir), "--storage", url]
    argv += ["--trials", "3", "--sampler", "random", "--fidelity", "auto", "--artifacts", str(tmp_path)]
    assert main([*argv, "--study", "on", "--early-stop", "on"]) == 0
    assert main([*argv, "--study", "off"]) == 0
    capsys.readouterr()
    on, off = (optuna.load_study(study_name=name, storage=url) for name in ("on", "off"))
    assert on.user_attrs["fidelity"] == {**probe["chosen"], "evals_per_epoch": 4, "interim_eval_fraction": 0.25}
    assert off.user_attrs["fidelity"] == probe["chosen"]  # without the rule: as calibrated
    assert len(on.get_trials(deepcopy=False)[2].user_attrs["curve"]) == 8  # four in each of its two epochs
