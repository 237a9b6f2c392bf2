"""`search --warm-start STUDY`: another task's finished search seeds a new one; a mismatched source is refused."""

from __future__ import annotations

import optuna

from autopeft.cli import main


def _search(glue_dir, url, tmp_path, task, study, *extra):
    argv = ["search", "--model", "tiny-bert", "--task", task, "--glue-dir", str(glue_dir), "--storage", url]
    argv += ["--fidelity", "epochs=1,max_train_samples=32,max_eval_samples=16", "--artifacts", str(tmp_path)]
    return main([*argv, "--study", study, "--sampler", "random", *extra])


def test_a_warm_start_enqueues_the_source_front_first(glue_dir, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert _search(glue_dir, url, tmp_path, "rte", "source", "--trials", "3") == 0
    source = optuna.load_study(study_name="source", storage=url)
    front = {tuple(sorted(t.params.items())) for t in source.best_trials}
    assert _search(glue_dir, url, tmp_path, "mrpc", "target", "--trials", "3", "--warm-start", "source") == 0
    assert "warm start from study 'source'" in capsys.readouterr().err
    target = optuna.load_study(study_name="target", storage=url).trials
    first = {tuple(sorted(t.params.items())) for t in target[: len(front)]}
    assert first == front  # the source's Pareto configurations ran first


def test_a_source_of_another_model_is_refused_before_the_study(glue_dir, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.db'}"
    argv = ["search", "--model", "tiny-roberta", "--task", "rte", "--glue-dir", str(glue_dir), "--storage", url]
    argv += ["--fidelity", "epochs=1,max_train_samples=32,max_eval_samples=16", "--artifacts", str(tmp_path)]
    assert main([*argv, "--study", "other", "--sampler", "random", "--trials", "1"]) == 0
    capsys.readouterr()
    assert _search(glue_dir, url, tmp_path, "mrpc", "target", "--trials", "2", "--warm-start", "other") == 2
    err = capsys.readouterr().err
    assert "cannot warm-start from study 'other'" in err and len(err.strip().splitlines()) == 1
    assert "target" not in {s.study_name for s in optuna.get_all_study_summaries(url)}


def test_a_warm_start_at_a_calibrated_fidelity_also_takes_the_probe_runs(glue_dir, tmp_path, capsys):
    """`--fidelity auto --warm-start`: the source's front is enqueued and the probe's runs are observed too."""
    from probes import stored_probe

    url = f"sqlite:///{tmp_path / 's.db'}"
    stored_probe(url, chosen=True, epochs=1, task="mrpc")
    assert _search(glue_dir, url, tmp_path, "rte", "source", "--trials", "3") == 0
    front = len(optuna.load_study(study_name="source", storage=url).best_trials)
    argv = ["search", "--model", "tiny-bert", "--task", "mrpc", "--glue-dir", str(glue_dir), "--storage", url]
    argv += ["--fidelity", "auto", "--artifacts", str(tmp_path), "--study", "target", "--sampler", "random"]
    assert main([*argv, "--trials", str(front + 3), "--warm-start", "source"]) == 0
    trials = optuna.load_study(study_name="target", storage=url).trials
    from_probe = [t for t in trials if t.user_attrs.get("from_probe")]
    assert len(from_probe) == 2 and len(trials) == front + 3  # the probe's two configurations, then one more
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert main([*argv, "--trials", str(front + 3), "--warm-start", "source"]) == 0  # again: nothing added
    assert len(optuna.load_study(study_name="target", storage=url).trials) == front + 3
