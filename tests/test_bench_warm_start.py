"""`autopeft bench warm-start` end to end on a tiny model: a source search of one task, then the same
seeds searched cold and warm on another, the figures, resuming, and refusals before any work."""

from __future__ import annotations

import json

import optuna
import pytest

from autopeft.cli import main
from autopeft.search.results import completed_rows, study_hypervolume

FIDELITY = "epochs=1,max_train_samples=64,max_eval_samples=32,batch_size=16"


@pytest.fixture(scope="module")
def source(glue_dir, tmp_path_factory) -> str:
    """A finished search of CoLA (tiny model) in its own storage, shared by this module's tests; its URL."""
    url = f"sqlite:///{tmp_path_factory.mktemp('source') / 'source.db'}"
    argv = ["search", "--model", "tiny-bert", "--glue-dir", str(glue_dir), "--task", "cola", "--fidelity", FIDELITY]
    assert main([*argv, "--trials", "4", "--sampler", "random", "--storage", url, "--study", "cola-search"]) == 0
    return url


def _bench(glue_dir, tmp_path, source_url: str, *extra: str) -> list[str]:
    argv = ["bench", "warm-start", "--model", "tiny-bert", "--glue-dir", str(glue_dir), "--task", "rte"]
    argv += ["--source", "cola-search", "--source-storage", source_url, "--seeds", "0", "--trials", "10"]
    argv += ["--fidelity", FIDELITY, "--surrogate", "saas-map", "--storage", f"sqlite:///{tmp_path / 'ws.db'}"]
    return [*argv, "--out", str(tmp_path / "out"), *extra]


def test_cold_and_warm_side_by_side_then_resume(glue_dir, tmp_path, capsys, monkeypatch, source):
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(_bench(glue_dir, tmp_path, source)) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    cold, warm = summary["table"]["autopeft"], summary["table"]["autopeft+warm-cola-search"]
    assert cold["spread@10"] == 0 and warm["spread@10"] == 0  # one seed
    assert "reaches_cold_final_at" in warm and summary["cpu_hours"]["warm"] > 0
    assert (tmp_path / "out" / "hv.png").stat().st_size > 0
    url = f"sqlite:///{tmp_path / 'ws.db'}"
    source_study = optuna.load_study(study_name="cola-search", storage=url)  # copied in beside the searches
    front = {json.dumps(t.params, sort_keys=True) for t in source_study.best_trials}
    warm_study = optuna.load_study(study_name="warm-start-rte-s0-warm", storage=url)
    cold_study = optuna.load_study(study_name="warm-start-rte-s0-cold", storage=url)
    assert "warm_start" in warm_study.user_attrs and "warm_start" not in cold_study.user_attrs
    first = {json.dumps(t.params, sort_keys=True) for t in warm_study.trials[: len(front)]}
    assert first == front  # the source's front is tried first
    for study, row in ((warm_study, warm), (cold_study, cold)):
        assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 10
        assert row["hv@10"] == pytest.approx(study_hypervolume(study, completed_rows(study)), abs=1e-4)  # as report
    before = {s.study_name: len(s.trials) for s in (warm_study, cold_study)}
    assert main(_bench(glue_dir, tmp_path, source)) == 0  # run again: nothing new trains, same figures
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["table"] == summary["table"]
    assert before == {n: len(optuna.load_study(study_name=n, storage=url).trials) for n in before}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--task", "cola"], "searched cola itself"),
        (["--source", "nope"], "no study named 'nope'"),
        (["--model", "tiny-roberta"], "its model is 'tiny-bert'"),
        (["--trials", "1"], "at least 2 trials"),
        (["--task", "rte,cola"], "--task names one task"),
    ],
)
def test_bad_input_is_refused_before_any_study(glue_dir, tmp_path, capsys, source, change, message):
    argv = _bench(glue_dir, tmp_path, source)
    for flag, value in zip(change[::2], change[1::2], strict=True):
        argv[argv.index(flag) + 1] = value
    capsys.readouterr()
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "ws.db").exists() and not (tmp_path / "out").exists()
