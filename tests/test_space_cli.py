"""`autopeft space` through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from autopeft.space import PEFTConfig, SearchSpace


def autopeft(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "autopeft", *args], capture_output=True, text=True, env=env)


def test_sample_verify_prints_json_lines_and_verdict():
    result = autopeft(
        "space", "--model", "tiny-roberta", "--space", "extended", "--sample", "25", "--seed", "3", "--verify"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "verified 25/25 exact"
    rows = [json.loads(line) for line in lines[:-1]]
    assert len(rows) == 25
    space = SearchSpace(4, 32, "extended")
    for row in rows:
        config = PEFTConfig.from_dict(row["config"])
        assert space.is_valid(config)
        assert row["params"] > 0 and 0 < row["percent"] < 100 and row["head_params"] == 32 * 32 + 32 + 2 * 32 + 2


def test_seed_reproduces_the_sample():
    a = autopeft("space", "--model", "tiny-bert", "--sample", "5", "--seed", "9")
    b = autopeft("space", "--model", "tiny-bert", "--sample", "5", "--seed", "9")
    c = autopeft("space", "--model", "tiny-bert", "--sample", "5", "--seed", "10")
    assert a.stdout == b.stdout != c.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "./missing-model"], "model folder './missing-model' does not exist"),
        (["--model", "bert-base-uncased"], "cannot load model 'bert-base-uncased' from the Hugging Face hub"),
        (["--model", "tiny-bert", "--config", '{"serial": 4, "layers": [0], "size": 1}'], "unknown configuration key"),
        (["--model", "tiny-bert", "--config", '{"serial": 5, "layers": [0]}'], "serial size 5 is not in the space"),
        (["--model", "tiny-bert", "--config", '{"serial": 4, "layers": []}'], "inserted in no layer"),
        (["--model", "tiny-bert", "--config", "{oops"], "not valid JSON"),
        (["--model", "tiny-bert", "--sample", "0"], "--sample must be at least 1"),
        (["--model", "tiny-bert", "--space", "huge"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = autopeft("space", *args)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_single_config_is_counted():
    result = autopeft(
        "space", "--model", "tiny-bert", "--config", '{"serial": 4, "prefix": 2, "layers": [0, 3]}', "--verify"
    )
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout.splitlines()[0])
    assert row["params"] == 2 * (2 * 32 * 4 + 4 + 32) + 2 * (2 * 32 * 2)
    assert result.stdout.splitlines()[-1] == "verified 1/1 exact"
