"""Benchmark problems (exact maximum hypervolume, pools of real evaluations) and `autopeft bench optimizers`."""

from __future__ import annotations

import csv
import itertools
import json
import random
import subprocess
import sys

import pytest

from autopeft.bench.optimizers import BenchSettings, Contender, run_one, summarise
from autopeft.bench.problems import bert_dims, make_synthetic, pool, synthetic
from autopeft.cli import main
from autopeft.errors import UserError
from autopeft.params import peft_params
from autopeft.space import PEFTConfig, SearchSpace


def test_bert_dims_match_minilm_without_loading_it():
    dims = bert_dims(6, 384)
    assert (dims.backbone_params, dims.bias_params) == (22_713_216, 26_112)  # models.dims_of("minilm")


def test_synthetic_maximum_hypervolume_equals_enumeration_of_the_space():
    problem = make_synthetic(4, hidden=8)  # 5 sizes per module, 4 layers: 1,860 valid configurations
    space = problem.space
    everything = [
        PEFTConfig.shared([i for i in range(4) if bits[i]], serial=s, parallel=p, prefix=x)
        for s, p, x in itertools.product(space.choices("serial"), repeat=3)
        for bits in itertools.product((0, 1), repeat=4)
    ]
    points = [(problem.truth(c), problem.params(c)) for c in everything if space.is_valid(c)]
    assert problem.hypervolume(points) == pytest.approx(1.0, abs=1e-12)
    # and no strict subset of random configurations reaches it
    rng = random.Random(0)
    assert problem.hypervolume(rng.sample(points, 200)) < 1.0


def test_synthetic_problems_depend_on_few_dimensions():
    problem = synthetic("synthetic-12")
    config = PEFTConfig.shared([11, 9, 4], serial=96, parallel=12)
    with_prefix = PEFTConfig.shared([11, 9, 4], serial=96, parallel=12, prefix=24)
    assert problem.truth(with_prefix) == problem.truth(config)  # the prefix only costs parameters
    with_extra = PEFTConfig.shared([0, 11, 9, 4], serial=96, parallel=12)
    assert problem.truth(with_extra) == problem.truth(config)  # so do unimportant layers
    assert problem.params(with_extra) > problem.params(config)
    assert problem.truth(config) > problem.truth(PEFTConfig.shared([0, 1, 2], serial=96, parallel=12))
    assert [synthetic(f"synthetic-{n}").space.dim for n in (6, 12, 24)] == [9, 15, 27]


def _write_pool(path, rows):
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["config", "metric", "params", "seed"])
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def tiny_pool(tmp_path):
    """A pool of 40 configurations of tiny-bert's shape (4 layers, hidden 32), one listed twice."""
    dims = bert_dims(4, 32)
    space = SearchSpace(4, 32)
    rng = random.Random(0)
    configs = list(dict.fromkeys(space.sample(rng) for _ in range(100)))[:40]
    rows = []
    for i, c in enumerate(configs):
        metric = 0.6 + 0.2 * (3 in c.shared_layers) + 0.01 * (c.serial > 0) + 0.001 * i
        rows.append({"config": c.to_json(), "metric": metric, "params": peft_params(c, dims), "seed": 42})
    rows.append({**rows[0], "metric": rows[0]["metric"] + 0.1, "seed": 43})
    path = tmp_path / "pool.csv"
    _write_pool(path, rows)
    return path, dims, configs


def test_pool_problem_reads_the_table_and_averages_repeated_configurations(tiny_pool):
    path, dims, configs = tiny_pool
    problem = pool(path, dims)
    assert set(problem.candidates) == set(configs)
    assert problem.truth(configs[0]) == pytest.approx(0.6 + 0.2 * (3 in configs[0].shared_layers) + 0.05 + 0.01 * 1)
    everything = [(problem.truth(c), problem.params(c)) for c in configs]
    assert problem.hypervolume(everything) == pytest.approx(1.0)


def test_a_floor_reaches_autopeft_from_pools_when_given_and_from_synthetic_problems_always(tiny_pool):
    from autopeft.bench.optimizers import BenchSettings, Contender
    from autopeft.bench.problems import problem_factory

    path, dims, _ = tiny_pool
    given, unknown = pool(path, dims, floor=0.6), pool(path, dims)
    assert given.name != unknown.name  # their saved runs are kept apart
    settings = BenchSettings(surrogate="saas-map")
    assert settings.sampler(Contender("autopeft"), given, 0).options.floor == 0.6
    assert settings.sampler(Contender("autopeft"), unknown, 0).options.floor is None
    synthetic = problem_factory("synthetic-6")()
    assert settings.sampler(Contender("autopeft"), synthetic, 0).options.floor == synthetic.metric_ref
    with pytest.raises(UserError, match="pool problems only"):
        problem_factory("synthetic-6", floor=0.5)


def test_pool_problem_refuses_bad_tables(tmp_path, tiny_pool):
    path, dims, _ = tiny_pool
    with pytest.raises(UserError, match="exact count"):
        pool(path, bert_dims(4, 64))
    bad = tmp_path / "bad.csv"
    bad.write_text("config,metric\n{},0.5\n")
    with pytest.raises(UserError, match="lacks column"):
        pool(bad, dims)
    _write_pool(bad, [{"config": '{"serial": 7, "layers": [0]}', "metric": 0.5, "params": 1, "seed": 0}])
    with pytest.raises(UserError, match=r"bad\.csv:2: serial size 7"):
        pool(bad, dims)


@pytest.mark.parametrize("name", ["tpe", "random", "autopeft:saas-map"])
def test_on_a_pool_optimisers_pick_only_unused_pool_members(tiny_pool, name):
    path, dims, configs = tiny_pool
    problem = pool(path, dims)
    run = run_one(problem, Contender.parse(name), 0, 12, BenchSettings(n_startup_trials=4))
    picked = [PEFTConfig.from_json(c) for c in run.configs]
    assert set(picked) <= set(configs) and len(set(picked)) == 12
    curve = run.hv_curve(problem)
    assert all(b >= a for a, b in itertools.pairwise(curve)) and 0 < curve[-1] <= 1


def test_summary_json_has_the_agreed_keys():
    problem = synthetic("synthetic-6")
    settings = BenchSettings(n_startup_trials=3)
    runs = [run_one(problem, Contender("random"), s, 8, settings) for s in (0, 1)]
    runs += [run_one(problem, Contender("tpe"), s, 4, settings) for s in (0, 1)]
    figures = summarise(problem, runs, 4)["json"]
    assert list(figures) == ["problem", "trials", "hv", "hv_random_2n", "suggest_seconds_median"]
    assert set(figures["hv"]) == {"random", "tpe"} and figures["trials"] == 4
    assert figures["hv_random_2n"] >= figures["hv"]["random"]


def test_bench_optimizers_command(tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["bench", "optimizers", "--problem", "synthetic-6", "--trials", "5", "--seeds", "2"]
    assert main([*args, "--samplers", "tpe,nsga2", "--n-startup", "3", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(lines[-1])
    assert figures["problem"] == "synthetic-6" and figures["trials"] == 5
    assert set(figures["hv"]) == {"tpe", "nsga2", "random"}  # random is always run, for hv_random_2n
    assert 0 < figures["hv_random_2n"] <= 1
    assert (out / "hv.png").stat().st_size > 10_000
    assert len(list((out / "runs").glob("*.json"))) == 6
    # a second call reuses the saved runs
    assert main([*args, "--samplers", "tpe", "--n-startup", "3", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["hv"]["tpe"] == figures["hv"]["tpe"]


def test_bench_optimizers_in_parallel_workers_gives_the_same_runs(tmp_path, capsys, tiny_pool):
    path, _, _ = tiny_pool
    args = ["bench", "optimizers", "--problem", f"pool:{path}", "--model", "tiny-bert", "--trials", "6", "--seeds", "2"]
    args += ["--samplers", "tpe,autopeft:saas-map", "--n-startup", "3"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    one = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main([*args, "--out", str(tmp_path / "two"), "--jobs", "2"]) == 0
    two = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert two["hv"] == one["hv"] and two["hv_random_2n"] == one["hv_random_2n"]  # seeded runs, any process
    for run in (tmp_path / "one" / "runs").glob("*.json"):
        assert (
            json.loads((tmp_path / "two" / "runs" / run.name).read_text())["run"]["configs"]
            == json.loads(run.read_text())["run"]["configs"]
        )
    assert main([*args, "--jobs", "0"]) == 2


def test_bench_optimizers_errors(capsys):
    assert main(["bench", "optimizers", "--problem", "synthetic-7"]) == 2
    assert "unknown problem" in capsys.readouterr().err
    assert main(["bench", "optimizers", "--problem", "synthetic-6", "--samplers", "tpe:saas"]) == 2
    assert "takes no surrogate" in capsys.readouterr().err
    assert main(["bench", "optimizers", "--problem", "pool:/nonexistent.csv", "--model", "tiny-bert"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_importing_the_optimiser_and_its_command_stays_light():
    code = (
        "import sys, autopeft.optim, autopeft.cli.bench_optimizers\n"
        "from autopeft.optim import SURROGATES\n"  # a light name: still no optuna, torch or botorch
        "print(sorted(m for m in ('torch', 'botorch', 'optuna', 'jax') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_targets_count_the_baselines_and_show_the_ablations_apart():
    from autopeft.cli.bench_optimizers import target_lines

    hv = {"random": 0.75, "tpe": 0.90, "gp": 0.85, "autopeft-plain-gp": 0.97, "autopeft:saas-map": 0.96}
    (line,) = target_lines(hv, 0.89, 40)
    assert line.startswith("target autopeft:saas-map: >= every baseline (random, tpe, gp) at 40: yes;")
    assert ">= random at 80: yes" in line and "against ablations: autopeft-plain-gp -0.0100" in line
    (line,) = target_lines({**hv, "tpe": 0.961}, 0.97, 40)
    assert ">= every baseline (random, tpe, gp) at 40: no" in line and ">= random at 80: no" in line
