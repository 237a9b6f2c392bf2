"""`autopeft search`, `worker` and `report` through real processes: kill -9 and resume, several
workers on PostgreSQL and SQLite, bad input that leaves the study untouched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from pgserver import postgres_server

FAST = ["--model", "tiny-bert", "--task", "rte", "--fidelity", "epochs=1,max_train_samples=48,max_eval_samples=24"]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def autopeft(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autopeft", *args], capture_output=True, text=True, env=_env(), cwd=cwd, timeout=timeout
    )


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if url not in _STORAGES:  # one connection pool per server: polling must not exhaust its connections
        _STORAGES[url] = optuna.storages.RDBStorage(url)
    return optuna.load_study(study_name=name, storage=_STORAGES[url]).get_trials(deepcopy=False)


_STORAGES: dict[str, optuna.storages.RDBStorage] = {}


def test_search_report_and_closing_json(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    args = ["search", *FAST, "--trials", "3", "--sampler", "random", "--storage", url, "--study", "demo"]
    result = autopeft(*args, "--baselines", "pfeiffer,lora")
    assert result.returncode == 0, result.stderr
    final = json.loads(result.stdout.strip().splitlines()[-1])
    assert final["study"] == "demo" and final["complete"] == 3 and final["failed"] == 0
    assert 1 <= final["pareto_size"] <= 3 and final["hypervolume"] >= 0
    assert 0.3 < final["constant_prediction"] < 0.7  # the held-out slice's majority-class accuracy on RTE
    assert "trial 3/3" in result.stderr and "pareto" in result.stderr
    assert "hypervolume: " in result.stdout and "elapsed: " in result.stdout  # the one-screen summary
    trials = _trials(url, "demo")
    attrs = trials[0].user_attrs
    for key in ("config", "params", "percent", "fidelity", "metrics", "train_seconds", "cpu_seconds", "worker"):
        assert key in attrs
    # continuing a finished study runs nothing more
    again = autopeft("search", *FAST, "--trials", "3", "--sampler", "random", "--storage", url, "--study", "demo")
    assert again.returncode == 0 and len(_trials(url, "demo")) == 3

    out = tmp_path / "report"
    report = autopeft("report", "--storage", url, "--study", "demo", "--out", str(out))
    assert report.returncode == 0, report.stderr
    for name in ("report.md", "pareto.csv", "pareto.json", "pareto.png", "hypervolume.png"):
        assert (out / name).stat().st_size > 0
    text = (out / "report.md").read_text()
    assert "## Pareto front" in text and "## Best configuration within a parameter budget" in text
    assert "- cost: 0.0" in text and "CPU hours" in text  # three tiny trials: well under an hour
    assert f"scores {final['constant_prediction']:.4f} on the held-out slice;" in text and "of 3 complete" in text
    assert json.loads((out / "pareto.json").read_text())["pareto"][0]["config"]
    assert "## Manual baselines (same fidelity)" in text and "| pfeiffer |" in text and "| lora |" in text


@pytest.fixture(scope="module")
def one_trial_study(tmp_path_factory) -> Path:
    """A study with one finished trial, made once: each bad-input case runs on its own copy."""
    path = tmp_path_factory.mktemp("one-trial") / "s.db"
    first = autopeft("search", *FAST, "--trials", "1", "--sampler", "random", "--storage", f"sqlite:///{path}",
                     "--study", "s")  # fmt: skip
    assert first.returncode == 0, first.stderr
    return path


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fidelity", "epochs=one"], "epochs"),
        (["--fidelity", "epochs"], "epochs"),
        (["--max-params", "10"], "below the smallest configuration"),
        (["--max-params", "lots"], "--max-params must be a count"),
        (["--task", "nosuchtask"], "unknown task"),
        (["--trials", "0"], "--trials must be at least 1"),
        (["--sampler", "autopeft", "--ref-point", "0.5"], "--ref-point must be METRIC,PARAMS"),
        (["--copula"], "AutoPEFT sampler options, not random's"),
    ],
)
def test_bad_input_leaves_the_study_untouched(one_trial_study, tmp_path, args, message):
    before = one_trial_study.read_bytes()
    (tmp_path / "s.db").write_bytes(before)
    url = f"sqlite:///{tmp_path / 's.db'}"
    cli = [*FAST, "--trials", "2", "--sampler", "random", "--storage", url, "--study", "s"]
    for flag in args[::2]:  # the bad value replaces the good one
        if flag in cli:
            i = cli.index(flag)
            del cli[i : i + 2]
    result = autopeft("search", *cli, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / "s.db").read_bytes() == before


def test_reference_point_copula_and_floor_reach_the_sampler(tmp_path):
    from autopeft import models
    from autopeft.search.record import StudyRecord
    from autopeft.search.run import sampler_for
    from autopeft.space import SearchSpace

    url = f"sqlite:///{tmp_path / 's.db'}"
    args = ["search", *FAST, "--trials", "1", "--storage", url, "--study", "r", "--ref-point", "0.4,5000", "--copula"]
    result = autopeft(*args)
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="r", storage=url)
    assert study.user_attrs["sampler_options"]["ref_point"] == [0.4, 5000.0]
    dims = models.dims_of("tiny-bert")
    record = StudyRecord.load(study)
    sampler = sampler_for(record, SearchSpace(dims.num_layers, dims.hidden_size, "paper"), dims)
    assert sampler.options.ref_point == (0.4, 5000.0) and sampler.options.copula  # what a worker builds too
    assert record.constant_prediction is not None and sampler.options.floor == record.constant_prediction


def test_continuing_with_other_settings_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert (
        autopeft("search", *FAST, "--trials", "1", "--sampler", "random", "--storage", url, "--study", "s").returncode
        == 0
    )
    before = (tmp_path / "s.db").read_bytes()
    other = [a if a != "rte" else "mrpc" for a in FAST]
    result = autopeft("search", *other, "--trials", "2", "--sampler", "random", "--storage", url, "--study", "s")
    assert result.returncode == 2 and "was created with task 'rte', not 'mrpc'" in result.stderr
    assert (tmp_path / "s.db").read_bytes() == before


def test_unreachable_storage_and_unknown_study(tmp_path):
    bad = autopeft("search", *FAST, "--trials", "1", "--storage", "postgresql://nobody@127.0.0.1:1/none")
    assert bad.returncode == 2 and "cannot open storage" in bad.stderr
    url = f"sqlite:///{tmp_path / 's.db'}"
    no_db = autopeft("report", "--storage", url, "--study", "nope")  # a read-only command creates no storage
    assert no_db.returncode == 2 and "does not exist" in no_db.stderr and not (tmp_path / "s.db").exists()
    from autopeft.search.storage import open_storage

    open_storage(url).engine.dispose()
    missing = autopeft("report", "--storage", url, "--study", "nope")
    assert missing.returncode == 2 and "no study named 'nope'" in missing.stderr


def _states(db: Path) -> list[tuple[int, str, int]]:
    """(number, state, configuration chosen) of every trial, read from Optuna's SQLite schema without a lock.

    The search stores the `config` user attribute once every parameter of the trial is suggested.
    """
    import sqlite3

    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            chosen = "SELECT COUNT(*) FROM trial_user_attributes u WHERE u.trial_id = t.trial_id AND u.key = 'config'"
            query = f"SELECT number, state, ({chosen})"
            return conn.execute(query + " FROM trials t ORDER BY number").fetchall()
    except sqlite3.Error:  # tables not created yet, or a write in progress
        return []


def test_sigkill_then_the_same_command_continues(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    # trials of several seconds, so that the kill lands inside one
    slow = ["--model", "tiny-bert", "--task", "rte", "--fidelity", "epochs=5,max_train_samples=600,max_eval_samples=64"]
    cmd = [sys.executable, "-m", "autopeft", "search", *slow, "--trials", "3", "--sampler", "random"]
    cmd += ["--storage", url, "--study", "k", "--seed", "1"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    killed = None
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            states = _states(tmp_path / "s.db")  # read-only SQL: never blocks the writer
            # a running trial whose whole configuration is chosen, so that its retry must repeat it
            running = [n for n, state, chosen in states if state == "RUNNING" and chosen]
            if sum(state == "COMPLETE" for _, state, _ in states) >= 1 and running:
                os.kill(proc.pid, signal.SIGKILL)
                killed = _trials(url, "k")[running[0]]
                break
    finally:
        proc.wait(timeout=60)
    assert killed is not None, "the search ended before it could be killed inside its second trial"
    before = {t.number: t.values for t in _trials(url, "k") if t.state == TrialState.COMPLETE}

    result = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    trials = _trials(url, "k")
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    for number, values in before.items():  # nothing completed was lost or redone
        assert trials[number].state == TrialState.COMPLETE and trials[number].values == values
    interrupted = trials[killed.number]
    assert interrupted.state == TrialState.FAIL
    assert interrupted.user_attrs["fail_reason"].startswith("interrupted")
    retries = [t for t in complete if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params
    assert json.loads(result.stdout.strip().splitlines()[-1])["complete"] == 3


def _run_workers(
    url: str, tmp_path: Path, trials: int, workers: int, kill_one: bool = False
) -> list[subprocess.CompletedProcess]:
    """`workers` processes on study "w"; with `kill_one`, the second is SIGKILLed inside one of its trials."""
    # trials long enough (a few seconds) that the later workers join before the first one is done
    slower = [a if not a.startswith("epochs=") else "epochs=1,max_train_samples=400,max_eval_samples=32" for a in FAST]
    first = [sys.executable, "-m", "autopeft", "search", *slower, "--trials", str(trials), "--sampler", "random"]
    first += ["--storage", url, "--study", "w"]
    procs = [subprocess.Popen(first, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    deadline = time.time() + 120
    while time.time() < deadline:  # the others join once the study exists
        try:
            _trials(url, "w")
            break
        except Exception:
            time.sleep(0.3)
    join = [sys.executable, "-m", "autopeft", "worker", "--storage", url, "--study", "w"]

    def start_worker() -> subprocess.Popen:
        return subprocess.Popen(join, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    if not kill_one:
        return _finish([*procs, *(start_worker() for _ in range(workers - 1))])
    # The first process is paused while the victim joins alone, so that the victim certainly holds a trial,
    # and stays paused until the others hold one too (a paused process on this host still counts as alive).
    _wait_for_a_running_trial(url, procs[0])
    procs[0].send_signal(signal.SIGSTOP)
    try:
        victim = start_worker()
        if _wait_for_a_running_trial(url, victim):
            os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL, victim.communicate()[1]
        others = [start_worker() for _ in range(workers - 2)]
        for other in others:
            _wait_for_a_running_trial(url, other)
    finally:
        procs[0].send_signal(signal.SIGCONT)
    return _finish([*procs, *others])


def _wait_for_a_running_trial(url: str, proc: subprocess.Popen, seconds: float = 300) -> bool:
    """Whether `proc` came to hold a running trial (with its configuration stored) within `seconds`."""
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        if any(
            t.state == TrialState.RUNNING and t.user_attrs.get("worker", {}).get("pid") == proc.pid
            and "config" in t.user_attrs
            for t in _trials(url, "w")
        ):  # fmt: skip
            return True
        time.sleep(0.2)
    return False


def _finish(procs: list[subprocess.Popen]) -> list[subprocess.CompletedProcess]:
    results = []
    for p in procs:
        out, err = p.communicate(timeout=900)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


def _check_exact(url: str, trials: int, interrupted: int = 0, sharing: int = 2) -> None:
    all_trials = _trials(url, "w")
    complete = [t for t in all_trials if t.state == TrialState.COMPLETE]
    assert len(complete) == trials  # exactly N: none lost, none extra
    states = [
        (t.number, t.state.name, t.user_attrs.get("skipped") or t.user_attrs.get("fail_reason")) for t in all_trials
    ]
    assert len(all_trials) == trials + interrupted, (
        states
    )  # no trial that did no work (a worker with nothing to do waits)
    assert len({t.number for t in complete}) == trials  # none twice
    assert not [t for t in all_trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    workers = {(t.user_attrs["worker"]["host"], t.user_attrs["worker"]["pid"]) for t in complete}
    assert len(workers) >= sharing  # the work really was shared


def test_search_jobs_run_trials_in_worker_processes(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    slower = [a if not a.startswith("epochs=") else "epochs=1,max_train_samples=400,max_eval_samples=32" for a in FAST]
    result = autopeft("search", *slower, "--trials", "4", "--sampler", "random", "--storage", url, "--study", "w",
                      "--jobs", "2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["complete"] == 4
    _check_exact(url, 4)
    before = len(_trials(url, "w"))
    bad = autopeft("search", *FAST, "--trials", "5", "--storage", url, "--study", "w", "--jobs", "0")
    assert bad.returncode != 0 and "--jobs must be at least 1" in bad.stderr
    assert len(_trials(url, "w")) == before  # the refused call touched nothing


def test_three_workers_share_a_postgresql_study(tmp_path):
    with postgres_server(tmp_path / "pg") as url:
        results = _run_workers(url, tmp_path, trials=9, workers=3)
        for r in results:
            assert r.returncode == 0, r.stderr
        _check_exact(url, 9)


@pytest.mark.parametrize("storage, workers", [("sqlite", 2), ("postgresql", 3)])
def test_a_killed_worker_leaves_exactly_the_budget_and_its_interrupted_trial(tmp_path, storage, workers):
    def check(url: str) -> None:
        for r in _run_workers(url, tmp_path, trials=5, workers=workers, kill_one=True):
            assert r.returncode == 0, r.stderr
        _check_exact(url, 5, interrupted=1, sharing=min(2, workers - 1))
        failed = [t for t in _trials(url, "w") if t.state == TrialState.FAIL]
        assert failed[0].user_attrs["fail_reason"].startswith("interrupted")

    if storage == "sqlite":
        check(f"sqlite:///{tmp_path / 's.db'}")
    else:
        with postgres_server(tmp_path / "pg") as url:
            check(url)


def test_two_local_processes_share_an_sqlite_study(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    for r in _run_workers(url, tmp_path, trials=6, workers=2):
        assert r.returncode == 0, r.stderr
    _check_exact(url, 6)


def _counted(trials) -> list:
    return [t for t in trials if t.state == TrialState.COMPLETE or "early_stopped" in t.user_attrs]


def test_early_stopping_with_workers_then_kill_and_resume(tmp_path):
    """Early stopping on, two workers (--jobs 2): the budget counts stopped trials; every trial has its
    curve; a SIGKILL mid-trial and the same command again finishes the budget exactly."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    staged = [
        "--model",
        "tiny-bert",
        "--task",
        "rte",
        "--fidelity",
        "epochs=3,max_train_samples=200,max_eval_samples=32",
    ]
    cmd = [sys.executable, "-m", "autopeft", "search", *staged, "--sampler", "random", "--storage", url]
    cmd += ["--study", "e", "--early-stop", "on", "--early-stop-min-share", "0.3", "--seed", "3"]
    first = subprocess.run(
        [*cmd, "--trials", "6", "--jobs", "2"], env=_env(), capture_output=True, text=True, timeout=900
    )
    assert first.returncode == 0, first.stderr
    trials = _trials(url, "e")
    assert len(_counted(trials)) == 6 and len(trials) == 6
    assert all(len(t.user_attrs["curve"]) >= 1 for t in trials)
    for t in trials:
        if t.state == TrialState.PRUNED:
            assert t.user_attrs["early_stopped"]["share"] < 1 and "cpu_seconds" in t.user_attrs
    # more trials, killed inside one, then the same command: exactly the new budget, plus the interrupted one
    proc = subprocess.Popen([*cmd, "--trials", "9"], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if any(state == "RUNNING" and chosen for _, state, chosen in _states(tmp_path / "s.db")):
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=60)
    again = subprocess.run([*cmd, "--trials", "9"], env=_env(), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr
    trials = _trials(url, "e")
    assert len(_counted(trials)) == 9
    assert len(trials) - 9 == sum(t.state == TrialState.FAIL for t in trials) <= 1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--early-stop", "on"], "early stopping needs more than one evaluation"),
        (["--early-stop", "on", "--fidelity", "epochs=2", "--early-stop-min-share", "1.5"], "min-share must be in"),
        (["--early-stop", "on", "--fidelity", "epochs=2", "--early-stop-quantile", "0"], "quantile must be in"),
    ],
)
def test_bad_early_stopping_is_refused_before_the_study(tmp_path, extra, message):
    url = f"sqlite:///{tmp_path / 's.db'}"
    result = autopeft("search", "--model", "tiny-bert", "--task", "rte", "--trials", "2", "--storage", url, *extra)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s.db").exists()
