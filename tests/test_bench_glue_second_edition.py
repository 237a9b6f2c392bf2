"""`autopeft bench glue` in its second-edition mode on a tiny model: rates chosen on held-out train by one
rule, searches at each task's calibrated fidelity with early stopping (none where calibration found no
signal), configurations ordered by held-out score, the transfer source chosen by signal."""

from __future__ import annotations

import optuna

from autopeft.bench.glue_rates import chosen_rate, evidence, grid, next_rates
from autopeft.cli import main
from probes import stored_probe

TINY = "epochs=1,max_train_samples=32,max_eval_samples=24,batch_size=16"


def test_second_edition_bench(glue_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url, probes = f"sqlite:///{tmp_path / 'bench.db'}", f"sqlite:///{tmp_path / 'probes.db'}"
    stored_probe(probes, chosen=True, epochs=1, task="rte")
    stored_probe(probes, chosen=False, task="cola")
    argv = ["bench", "glue", "--model", "tiny-bert", "--glue-dir", str(glue_dir), "--tasks", "rte,cola"]
    argv += ["--methods", "lora", "--seeds", "0", "--fidelity", TINY, "--rate-grid", "0.5,1"]
    argv += ["--search-trials", "4", "--sampler", "random", "--top", "2"]
    argv += ["--search-fidelity", "auto", "--early-stop", "--transfer-from", "auto", "--probe-storage", probes]
    argv += ["--random-searches"]
    argv += ["--storage", url, "--name", "g2", "--out", str(tmp_path / "RESULTS.md")]
    assert main(argv) == 0
    capsys.readouterr()
    attrs = optuna.load_study(study_name="g2", storage=url).user_attrs

    # one rule for every row: each rate of the grid on held-out train (and steps beyond its end while the best
    # sits there, until the rule has nothing left to try), the final runs at the best
    for task in ("rte", "cola"):
        scores = evidence(attrs, task, "lora", 1e-3, (0.5, 1.0))
        assert set(grid(1e-3, (0.5, 1.0))) == {5e-4, 1e-3} and {5e-4, 1e-3} <= set(scores)
        assert next_rates(attrs, task, "lora", 1e-3, (0.5, 1.0)) == []
        assert attrs[f"run:{task}:0:lora"]["lr"] == chosen_rate(scores, 1e-3)

    # RTE searched at its calibrated one-epoch fidelity, scored four times an epoch for early stopping
    search = optuna.load_study(study_name="g2-search-rte", storage=url)
    assert search.user_attrs["fidelity"]["evals_per_epoch"] == 4 and search.user_attrs["early_stop"]["on"]
    # CoLA's calibration found no signal: reported, not searched
    assert "no rung" in attrs["nosignal:cola"] and "chosen:cola" not in attrs
    assert "g2-search-cola" not in [s.study_name for s in optuna.get_all_study_summaries(url)]

    # the chosen configurations in order of their best held-out score; rows from RTE, the only signal
    chosen = attrs["chosen:rte"]
    best = {c: max(evidence(attrs, "rte", c, 1e-3, (0.5, 1.0)).values()) for c in chosen}
    ranked = sorted(chosen, key=best.__getitem__, reverse=True)
    assert attrs["rows"]["autopeft-transfer"] == {"rte": ranked[0], "cola": ranked[0]}
    assert "autopeft-transfer#2" not in attrs["rows"]  # one configuration transferred: chosen on RTE alone
    assert attrs["rows"]["autopeft-task"] == {"rte": ranked[0]} and attrs["rows"]["autopeft-task#2"] == {
        "rte": ranked[1]
    }
    assert all(f"rate:cola:{ranked[0]}:{r:g}" in attrs for r in (5e-4, 1e-3))  # its rate chosen on CoLA too

    text = (tmp_path / "RESULTS.md").read_text()
    assert "Incomplete" not in text  # CoLA's per-task rows are not expected: it was not searched
    assert "## Learning rates" in text and "**" in text.split("## Learning rates")[1].split("##")[0]
    assert "- CoLA: not searched: no rung" in text and "the fidelity `autopeft calibrate` chose for each task" in text
    assert "| AutoPEFT, per task | " in text and "| not searched | – |" in text  # its CoLA cell, then no average
    assert "the table's row is the one best on held-out train, the other follows as #2." in text  # --top 2
    assert "from RTE, the search whose calibrated fidelity had the strongest signal" in text
    assert "its configuration best on held-out train there, trained on every task" in text
    assert "| Calibrated fidelity |" in text and "evals_per_epoch=4" in text
    assert "| Stopped early (CPU hours saved) |" in text  # its searches stop early
    claims = text.split("## The paper's claims, here")[1].split("##")[0]
    assert "on every searched task" in claims  # no full fine-tuning row here; CoLA, unsearched, is not awaited
    assert "- The project's aim, *AutoPEFT per task at least matches" in claims
    # the front per task, and the search's hypervolume beside the random search of as many trials
    assert "## The front per task" in text and (tmp_path / "RESULTS-rte.png").stat().st_size > 0
    assert (tmp_path / "RESULTS-cola.png").is_file()  # its manual rows and the transferred one
    random = optuna.load_study(study_name="g2-random-rte", storage=url)
    assert random.user_attrs["sampler"] == "random" and random.user_attrs["fidelity"] == search.user_attrs["fidelity"]
    hv_row = next(line for line in text.splitlines() if line.startswith("| RTE | "))
    assert "(random " in hv_row and hv_row.count("|") == 3  # one count: the 4 trials

    before = {k: v for k, v in attrs.items() if k != "machines"}
    assert main(argv) == 0  # all done: nothing runs again
    after = optuna.load_study(study_name="g2", storage=url).user_attrs
    assert {k: v for k, v in after.items() if k != "machines"} == before


def test_transfer_auto_needs_calibrated_searches_and_bad_grids_are_refused(glue_dir, tmp_path, capsys):
    argv = ["bench", "glue", "--model", "tiny-bert", "--glue-dir", str(glue_dir), "--tasks", "rte"]
    argv += ["--storage", f"sqlite:///{tmp_path / 'b.db'}", "--out", str(tmp_path / "R.md")]
    assert main([*argv, "--transfer-from", "auto"]) == 2
    assert "use --search-fidelity auto" in capsys.readouterr().err
    for bad in ("0.5,2", "1,-1", "fast"):
        assert main([*argv, "--rate-grid", bad]) == 2
        assert "--rate-grid" in capsys.readouterr().err
    assert not (tmp_path / "b.db").exists() and not (tmp_path / "R.md").exists()
