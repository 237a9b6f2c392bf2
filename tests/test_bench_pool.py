"""`autopeft bench make-pool` on a tiny model: rows, noise repeats, resuming, parallel workers, bad input."""

from __future__ import annotations

import csv
import json

from autopeft.cli import main

FIDELITY = ["--epochs", "1", "--max-train-samples", "24", "--max-eval-samples", "16"]


def _pool(glue_dir, out, *extra):
    argv = ["bench", "make-pool", "--model", "tiny-bert", "--task", "rte", "--glue-dir", str(glue_dir)]
    sizes = ["--configs", "4", "--noise-configs", "1", "--noise-seeds", "2"]
    return main([*argv, *FIDELITY, *sizes, "--out", str(out), *extra])


def _rows(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_rows_noise_repeats_and_resume(glue_dir, tmp_path, capsys):
    out = tmp_path / "pool.csv"
    assert _pool(glue_dir, out) == 0
    rows = _rows(out)
    assert len(rows) == 5  # 4 configurations, the first with 2 seeds
    by_config = {}
    for row in rows:
        by_config.setdefault(row["config"], []).append(int(row["seed"]))
    assert len(by_config) == 4 and sorted(by_config[rows[0]["config"]]) == [0, 1]
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["configs"] == 4 and summary["rows"] == 5
    assert json.loads(out.with_suffix(".json").read_text())["setting"]["task"] == "rte"
    before = out.read_bytes()
    assert _pool(glue_dir, out) == 0  # everything done: nothing trained, nothing appended
    assert out.read_bytes() == before
    assert "0 to go" in capsys.readouterr().err


def test_parallel_workers_give_the_same_rows(glue_dir, tmp_path):
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    assert _pool(glue_dir, one, "--device", "cpu") == 0
    assert _pool(glue_dir, two, "--device", "cpu", "--jobs", "2") == 0

    def key(rows):
        return sorted((r["config"], r["seed"], r["params"], round(float(r["metric"]), 4)) for r in rows)

    assert key(_rows(two)) == key(_rows(one))  # seeded trials: the same results whichever worker ran them


def test_other_settings_or_bad_jobs_refused(glue_dir, tmp_path, capsys):
    out = tmp_path / "pool.csv"
    assert _pool(glue_dir, out, "--configs", "2", "--noise-configs", "0") == 0
    before = out.read_bytes()
    assert _pool(glue_dir, out, "--fidelity", "lr=1e-2") == 2
    assert "other settings" in capsys.readouterr().err
    assert _pool(glue_dir, out, "--jobs", "0") == 2
    assert out.read_bytes() == before
