"""`autopeft space` through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from autopeft.space import PEFTConfig, SearchSpace
from in_process import exit_code


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


def in_process(capsys, *args: str) -> tuple[int, str, str]:
    """The same command in this process: exit code, stdout, stderr."""
    capsys.readouterr()
    code = exit_code(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_seed_reproduces_the_sample(capsys):
    a = in_process(capsys, "space", "--model", "tiny-bert", "--sample", "5", "--seed", "9")
    b = in_process(capsys, "space", "--model", "tiny-bert", "--sample", "5", "--seed", "9")
    c = in_process(capsys, "space", "--model", "tiny-bert", "--sample", "5", "--seed", "10")
    assert a[0] == 0 and a[1] == b[1] != c[1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "./missing-model"], "model folder './missing-model' does not exist"),
        (["--model", "tiny-bert", "--config", '{"serial": 4, "layers": [0], "size": 1}'], "unknown configuration key"),
        (["--model", "tiny-bert", "--config", '{"serial": 5, "layers": [0]}'], "serial size 5 is not in the space"),
        (["--model", "tiny-bert", "--config", '{"serial": 4, "layers": []}'], "inserted in no layer"),
        (["--model", "tiny-bert", "--config", "{oops"], "not valid JSON"),
        (["--model", "tiny-bert", "--sample", "0"], "--sample must be at least 1"),
        (["--model", "tiny-bert", "--space", "huge"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    code, out, err = in_process(capsys, "space", *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert out == ""


def test_an_unreachable_hub_model_is_one_line_and_exit_2():
    result = autopeft("space", "--model", "bert-base-uncased")  # offline: HF_HUB_OFFLINE is read at import
    assert result.returncode == 2 and result.stdout == ""
    assert "cannot load model 'bert-base-uncased' from the Hugging Face hub" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_single_config_is_counted(capsys):
    config = '{"serial": 4, "prefix": 2, "layers": [0, 3]}'
    code, out, err = in_process(capsys, "space", "--model", "tiny-bert", "--config", config, "--verify")
    assert code == 0, err
    row = json.loads(out.splitlines()[0])
    assert row["params"] == 2 * (2 * 32 * 4 + 4 + 32) + 2 * (2 * 32 * 2)
    assert out.splitlines()[-1] == "verified 1/1 exact"
