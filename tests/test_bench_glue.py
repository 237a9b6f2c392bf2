"""`autopeft bench glue` end to end on a tiny model: rows, searches, resuming, refusals."""

from __future__ import annotations

import json

import optuna
import pytest

from autopeft.cli import main

TINY_FIDELITY = "epochs=1,max_train_samples=32,max_eval_samples=24,batch_size=16"


def _bench(glue_dir, tmp_path, *extra):
    argv = ["bench", "glue", "--model", "tiny-bert", "--glue-dir", str(glue_dir), "--tasks", "rte,cola"]
    argv += ["--methods", "pfeiffer,lora", "--seeds", "0,1", "--fidelity", TINY_FIDELITY]
    argv += ["--search-trials", "3", "--search-startup", "2", "--surrogate", "saas-map"]
    argv += ["--search-fidelity", "epochs=1,max_train_samples=32,max_eval_samples=16,batch_size=16"]
    argv += ["--storage", f"sqlite:///{tmp_path / 'bench.db'}", "--name", "g", "--out", str(tmp_path / "RESULTS.md")]
    return main([*argv, *extra])


def _attrs(tmp_path):
    return optuna.load_study(study_name="g", storage=f"sqlite:///{tmp_path / 'bench.db'}").user_attrs


def test_manual_rows_then_searches_resume_without_retraining(glue_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # search artifacts go under ./studies
    assert _bench(glue_dir, tmp_path, "--no-search") == 0
    attrs = _attrs(tmp_path)
    manual = {k: v for k, v in attrs.items() if k.startswith("run:")}
    assert len(manual) == 2 * 2 * 2  # methods x tasks x seeds
    assert {k.split(":", 3)[3] for k in manual} == {"pfeiffer", "lora"}
    assert {v["lr"] for v in manual.values()} == {1e-3}  # the bench's short-budget PEFT rate, not 1e-4/5e-4
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| Serial adapter (Pfeiffer) |" in text and "| LoRA |" in text and "not measured yet" in text
    capsys.readouterr()

    assert _bench(glue_dir, tmp_path) == 0
    attrs = _attrs(tmp_path)
    assert {k: attrs[k] for k in manual} == manual  # the manual runs were not redone
    assert attrs["rows"]["autopeft-transfer"] == {"rte": attrs["chosen:rte"][0], "cola": attrs["chosen:rte"][0]}
    assert attrs["rows"]["autopeft-task"] == {"rte": attrs["chosen:rte"][0], "cola": attrs["chosen:cola"][0]}
    assert attrs["rows"]["lora"] == {"rte": "lora", "cola": "lora"}
    transfer = attrs["chosen:rte"][0]
    assert all(f"run:{t}:{s}:{transfer}" in attrs for t in ("rte", "cola") for s in (0, 1))
    assert all(f"run:cola:{s}:{attrs['chosen:cola'][0]}" in attrs for s in (0, 1))
    for task in ("rte", "cola"):
        search = optuna.load_study(study_name=f"g-search-{task}", storage=f"sqlite:///{tmp_path / 'bench.db'}")
        assert len([t for t in search.trials if t.state.name == "COMPLETE"]) == 3
        # each trial's cost runs from the previous trial's end: it covers its training and its suggestion
        assert all(t.user_attrs["wall_seconds"] >= t.user_attrs["train_seconds"] for t in search.trials)
        assert all(t.user_attrs["cpu_seconds"] > 0 for t in search.trials)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary["average"]) == {"pfeiffer", "lora", "autopeft-transfer", "autopeft-task"}
    assert all(v is not None for v in summary["average"].values())
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| AutoPEFT, transferred |" in text and "| AutoPEFT, per task |" in text and "Incomplete" not in text
    assert (tmp_path / "RESULTS.png").is_file()
    assert "RTE #1:" in text and "| RTE (`g-search-rte`) | 3 |" in text
    rte_search = optuna.load_study(study_name="g-search-rte", storage=f"sqlite:///{tmp_path / 'bench.db'}")
    floor, best = rte_search.user_attrs["constant_prediction"], max(t.values[0] for t in rte_search.trials if t.values)
    assert f"| {100 * floor:.1f} | {100 * best:.1f} |" in text  # the search's signal: its floor and best trial
    assert "| *Constant prediction (majority class)* | *52.7* | *0.0* | *26.4* | 0 |" in text  # from the dev files

    before = dict(attrs)
    assert _bench(glue_dir, tmp_path) == 0  # all done: nothing trained or searched again
    after = _attrs(tmp_path)
    assert {k: v for k, v in after.items() if k != "machines"} == {k: v for k, v in before.items() if k != "machines"}
    (tmp_path / "RESULTS.md").unlink()
    assert _bench(glue_dir, tmp_path, "--report-only", "--fidelity", "epochs=9") == 0  # the stored settings count
    assert (tmp_path / "RESULTS.md").read_text() == text and _attrs(tmp_path) == after


def test_other_settings_and_bad_input_refused_without_writing(glue_dir, tmp_path, capsys):
    assert _bench(glue_dir, tmp_path, "--no-search", "--methods", "lora", "--seeds", "0", "--tasks", "rte") == 0
    before = _attrs(tmp_path)
    assert _bench(glue_dir, tmp_path, "--no-search", "--fidelity", "epochs=2,max_train_samples=32") == 2
    assert "other settings (fidelity)" in capsys.readouterr().err
    assert _bench(glue_dir, tmp_path, "--methods", "lora,adapterdrop") == 2
    assert "unknown method 'adapterdrop'" in capsys.readouterr().err
    assert _bench(glue_dir, tmp_path, "--tasks", "rte,squad") == 2
    assert "unknown GLUE task 'squad'" in capsys.readouterr().err
    assert _bench(glue_dir, tmp_path, "--tasks", "cola", "--transfer-from", "rte") == 2
    assert _bench(glue_dir, tmp_path, "--lrs", "adapters=1e-3") == 2
    assert "--lrs wants family=lr or method=lr" in capsys.readouterr().err
    assert _bench(glue_dir, tmp_path, "--report-only", "--name", "nothing") == 2
    assert "no study named 'nothing'" in capsys.readouterr().err
    assert _bench(glue_dir, tmp_path, "--sampler", "cmaes") == 2
    assert "unknown --sampler 'cmaes'" in capsys.readouterr().err
    assert _bench(glue_dir, tmp_path, "--max-params", "lots") == 2
    storage = f"sqlite:///{tmp_path / 'bench.db'}"
    optuna.create_study(study_name="a-search", storage=storage).set_user_attr("task", "rte")
    assert _bench(glue_dir, tmp_path, "--name", "a-search", "--no-search") == 2
    assert "is not a GLUE bench" in capsys.readouterr().err
    assert optuna.load_study(study_name="a-search", storage=storage).user_attrs == {"task": "rte"}
    assert _attrs(tmp_path) == before


def test_each_row_reads_its_own_item_per_task(tmp_path):
    from autopeft.bench.glue_study import Bench
    from autopeft.search.storage import open_storage

    bench = Bench(open_storage(f"sqlite:///{tmp_path / 'b.db'}"), "b", {"model": "tiny-bert"})
    bench.seeds, bench.tasks, bench.methods = [0], ["rte", "cola"], ["lora"]
    a, b = '{"serial":8,"layers":[0]}', '{"lora":2,"layers":[1]}'
    bench._add_row("autopeft-transfer", ["rte", "cola"], a)
    bench._add_row("autopeft-task", ["rte"], a)
    bench._add_row("autopeft-task", ["cola"], b)
    for task, item, score in (("rte", a, 0.6), ("cola", a, 0.1), ("cola", b, 0.3)):
        bench.study.set_user_attr(Bench.run_key(task, 0, item), {"score": score, "params": 1, "percent": 0.1})
    table = bench.results()
    assert table["autopeft-transfer"]["cola"][0]["score"] == 0.1
    assert table["autopeft-task"]["cola"][0]["score"] == 0.3  # cola's own search, not RTE's configuration
    assert table["autopeft-task"]["rte"][0]["score"] == 0.6


def test_a_method_named_in_lrs_trains_at_its_own_rate_the_rest_at_their_familys(tmp_path):
    from autopeft.bench.glue import parse_lrs
    from autopeft.bench.glue_study import Bench
    from autopeft.errors import UserError
    from autopeft.search.storage import open_storage

    lrs = parse_lrs("parallel=1e-4,mam=2e-4")
    bench = Bench(open_storage(f"sqlite:///{tmp_path / 'b.db'}"), "b", {"model": "tiny-bert", "lrs": lrs})
    assert bench.base_rate("parallel") == 1e-4 and bench.base_rate("mam") == 2e-4
    assert (
        bench.base_rate("pfeiffer") == bench.base_rate("houlsby") == 1e-3
    )  # parallel's family, "adapter", is unchanged
    assert bench.base_rate("unipelt") == 1e-3 and bench.base_rate("full") == 5e-5
    assert bench.base_rate('{"parallel":8,"layers":[0]}') == 1e-3  # a searched configuration: its family's rate
    with pytest.raises(UserError, match="--lrs parallel='fast' is not a number"):
        parse_lrs("parallel=fast")


def test_report_only_shows_what_the_bench_ran_not_the_defaults(glue_dir, tmp_path):
    assert _bench(glue_dir, tmp_path, "--no-search", "--methods", "lora", "--seeds", "1", "--tasks", "cola") == 0
    ran = (tmp_path / "RESULTS.md").read_text()
    (tmp_path / "RESULTS.md").unlink()
    argv = ["bench", "glue", "--report-only", "--storage", f"sqlite:///{tmp_path / 'bench.db'}", "--name", "g"]
    assert main([*argv, "--glue-dir", str(glue_dir), "--out", str(tmp_path / "RESULTS.md")]) == 0
    text = (tmp_path / "RESULTS.md").read_text()
    assert text == ran  # CoLA and LoRA, seed 1: not every task in the folder, the default methods and seeds
    assert "| Method | CoLA (MCC) | Avg | % params |" in text and "RTE (acc.)" not in text and "Incomplete" not in text
    assert "Seeds: 1;" in text
    assert "No search has run in this bench." in text and "| Search | Trials |" not in text
