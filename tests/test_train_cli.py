"""`autopeft train` and `autopeft bench engine` end to end on a tiny model; bad input is one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from autopeft.cli import main
from in_process import exit_code

TINY = ["--model", "tiny-bert", "--epochs", "1", "--max-train-samples", "32", "--max-eval-samples", "16"]


def _train(glue_dir, *extra):
    """The exit code of `autopeft train ...`."""
    return exit_code(["train", *TINY, "--no-progress", "--glue-dir", str(glue_dir), *extra])


def test_lines_per_seed_then_json(glue_dir, tmp_path, capsys):
    assert _train(glue_dir, "--task", "rte", "--method", "lora", "--seeds", "40,41", "--out", str(tmp_path)) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("rte (2490 train, 277 dev) | tiny-bert | lora | 4,096 params")
    assert lines[1].startswith("seed 40: accuracy ") and lines[2].startswith("seed 41: accuracy ")
    summary = json.loads(lines[-1])
    assert {"task", "metric_name", "mean", "std", "params", "percent"} <= set(summary)
    assert summary["task"] == "rte" and summary["metric_name"] == "accuracy" and summary["n"] == 2
    assert summary["mean"] == pytest.approx((summary["scores"]["40"] + summary["scores"]["41"]) / 2)
    assert summary["fidelity"]["patience"] == 10  # the paper's final-run default, epochs overridden
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert (tmp_path / "seed_40" / "adapters" / "autopeft_lora").is_dir()
    assert (tmp_path / "seed_41" / "metrics.json").is_file()


def test_config_file_or_inline_json_and_search_mode(glue_dir, tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text('{"serial": 8, "prefix": 2, "layers": [0, 3]}', encoding="utf-8")
    assert _train(glue_dir, "--task", "cola", "--config", str(config), "--mode", "search") == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["config"] == {"serial": 8, "parallel": 0, "prefix": 2, "lora": 0, "layers": [0, 3]}
    assert summary["metric_name"] == "matthews_correlation" and summary["mode"] == "search" and summary["std"] == 0.0
    assert _train(glue_dir, "--task", "stsb", "--config", '{"lora": 2, "layers": [1]}', "--fidelity", "lr=1e-3") == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["metric_name"] == "pearson_spearman_mean" and summary["fidelity"]["lr"] == 1e-3


def test_user_files(glue_dir, tmp_path, capsys):
    train, dev = tmp_path / "train.csv", tmp_path / "dev.csv"
    train.write_text("text,label\n" + "".join(f"good {i},pos\nbad {i},neg\n" for i in range(20)), encoding="utf-8")
    dev.write_text("text,label\ngood,pos\nbad,neg\n", encoding="utf-8")
    assert _train(glue_dir, "--train-file", str(train), "--dev-file", str(dev), "--method", "pfeiffer") == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["task"] == "train" and summary["metric_name"] == "accuracy"


def test_every_seed_failing_exits_1(glue_dir, capsys):
    assert _train(glue_dir, "--task", "rte", "--method", "pfeiffer", "--lr", "1e30", "--epochs", "2") == 1
    out = capsys.readouterr()
    assert "seed 42: failed: " in out.out and json.loads(out.out.strip().splitlines()[-1])["mean"] is None


def _files(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("sentence,label\na,pos\nb,neg\n", encoding="utf-8")
    dev = tmp_path / "dev.csv"
    dev.write_text("sentence,label\nc,maybe\n", encoding="utf-8")
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("sentence,label\nna\xefve,pos\n".encode("latin-1"))
    return good, dev, empty, latin


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "nli", "--method", "lora"], "unknown task 'nli'"),
        (["--train-file", "{tmp}/missing.csv", "--method", "lora"], "missing.csv: no such file"),
        (["--train-file", "{good}", "--text-columns", "text", "--method", "lora"], "no text column 'text'"),
        (["--train-file", "{good}", "--dev-file", "{dev}", "--method", "lora"], "dev labels never seen in training"),
        (["--train-file", "{empty}", "--method", "lora"], "the file is empty"),
        (["--train-file", "{latin}", "--method", "lora"], "not UTF-8 text"),
        (["--task", "rte", "--method", "lora", "--fidelity", "epochs=two"], "epochs='two' is not a number"),
        (["--task", "rte", "--method", "lora", "--seeds", "1,x"], "--seeds '1,x' is not a comma-separated list"),
        (["--task", "rte", "--method", "adapterdrop"], "unknown method 'adapterdrop'"),
        (["--task", "rte", "--config", "{tmp}/none.json"], "no such file"),
        (["--task", "rte", "--config", '{{"serial": 8, "layers": [9]}}'], "layer 9 does not exist"),
        (["--method", "lora"], "give --task (a GLUE task) or --train-file"),
        (["--task", "rte", "--method", "lora", "--config", "{{}}"], "not allowed with argument"),
        (["--task", "rte", "--method", "lora", "--epochs", "0"], "epochs must be positive"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(glue_dir, tmp_path, capsys, args, message):
    good, dev, empty, latin = _files(tmp_path)
    names = {"tmp": tmp_path, "good": good, "dev": dev, "empty": empty, "latin": latin}
    assert _train(glue_dir, *[a.format(**names) for a in args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_bench_engine_prints_both_sides_and_json(glue_dir, capsys):
    args = ["bench", "engine", "--model", "tiny-bert", "--task", "rte", "--glue-dir", str(glue_dir)]
    args += ["--train-samples", "32", "--eval-samples", "16", "--seeds", "40", "--trials", "3", "--no-progress"]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert sum(line.startswith("engine   trial") for line in lines) == 3
    assert sum(line.startswith("baseline trial") for line in lines) == 1
    assert any(line.startswith("memory:   RSS after engine trial 1") for line in lines)
    result = json.loads(lines[-1])
    assert {"task", "baseline_ex_per_s", "engine_ex_per_s", "ratio"} <= set(result)
    assert result["ratio"] == pytest.approx(result["engine_ex_per_s"] / result["baseline_ex_per_s"], rel=1e-2)
    assert result["trials"] == 3 and result["task"] == "rte"


def test_bench_engine_needs_enough_trials(glue_dir, capsys):
    args = ["bench", "engine", "--model", "tiny-bert", "--task", "rte", "--seeds", "1,2,3", "--trials", "2"]
    assert main(args) == 2
    assert "--trials 2 is fewer than the 3 seeds" in capsys.readouterr().err


def test_help_stays_light():
    code = "import sys, autopeft.cli as c; c.build_parser(); print([m for m in ('torch', 'numpy') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert (
        "train"
        in subprocess.run(
            [sys.executable, "-m", "autopeft", "--help"], capture_output=True, text=True, check=True
        ).stdout
    )


@pytest.mark.slow
def test_minilm_train_on_64_examples(glue_dir, capsys):
    args = ["train", "--model", "minilm", "--task", "rte", "--glue-dir", str(glue_dir), "--method", "pfeiffer"]
    args += ["--epochs", "1", "--max-train-samples", "64", "--max-eval-samples", "64", "--seeds", "40,41"]
    args += ["--no-progress"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n"] == 2 and 0.3 <= summary["mean"] <= 0.7 and summary["params"] == 113_040
