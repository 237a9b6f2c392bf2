"""Study storage: identity checks, unreachable storages, interrupted trials failed and retried."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from autopeft.engine import Fidelity
from autopeft.search import storage as st
from autopeft.search.claim import budget_lock
from autopeft.search.record import SamplerSettings, StudyError, StudyRecord, TaskArgs
from pgserver import postgres_server

IDENTITY = StudyRecord(
    model="tiny-bert",
    task="rte",
    space="paper",
    fidelity=Fidelity(epochs=1),
    num_labels=2,
    metric="accuracy",
    sampler=SamplerSettings("random"),
    trials=2,
    max_params=None,
    seed=42,
    data=TaskArgs("rte"),
    params_ref=1000,
    params_min=10,
    backbone_params=100000,
    constant_prediction=0.5,
)


def _storage(tmp_path):
    return st.open_storage(f"sqlite:///{tmp_path / 'studies' / 'x.db'}")


def test_create_then_continue_checks_identity(tmp_path):
    storage = _storage(tmp_path)
    study = st.create_or_continue("s", storage, IDENTITY)
    assert study.user_attrs["task"] == "rte" and study.directions[0].name == "MAXIMIZE"
    again = st.create_or_continue("s", storage, IDENTITY)
    assert again._study_id == study._study_id
    other = IDENTITY.replace(fidelity=Fidelity(epochs=2))
    before = storage.get_study_user_attrs(study._study_id)
    with pytest.raises(StudyError, match="created with fidelity epochs=1, not epochs=2"):
        st.create_or_continue("s", storage, other)
    assert storage.get_study_user_attrs(study._study_id) == before
    assert len(optuna.get_all_study_summaries(storage)) == 1


def test_unknown_study_names_the_known_ones(tmp_path):
    storage = _storage(tmp_path)
    st.create_or_continue("first", storage, IDENTITY)
    with pytest.raises(StudyError, match=r"no study named 'second'.*studies there: first"):
        st.load_study("second", storage)


@pytest.mark.parametrize(
    "url, message",
    [
        ("postgresql://u:secret@127.0.0.1:1/db", "cannot open storage postgresql://u:\\*\\*\\*@127.0.0.1:1/db"),
        ("nosuchdb://x", "cannot open storage nosuchdb://x"),
        ("studies.db", "is not a database URL"),
    ],
)
def test_unreachable_storage_is_one_clear_error(url, message):
    with pytest.raises(StudyError, match=message):
        st.open_storage(url)


def _dead_worker() -> dict:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return {**st.worker_id(), "pid": int(proc.stdout), "start": "0"}


def test_trial_of_a_dead_local_process_is_failed_and_retried(tmp_path):
    storage = _storage(tmp_path)
    study = st.create_or_continue("s", storage, IDENTITY)
    dist = {"serial": CategoricalDistribution([0, 4, 8])}
    dead = study.ask(dist)
    dead.set_user_attr("worker", _dead_worker())
    alive = study.ask(dist)
    alive.set_user_attr("worker", st.worker_id())
    assert st.fail_interrupted_trials(study) == [dead.number]
    trials = study.get_trials(deepcopy=False)
    assert trials[dead.number].state == TrialState.FAIL
    assert trials[dead.number].user_attrs["fail_reason"] == "interrupted: its process died"
    assert trials[alive.number].state == TrialState.RUNNING
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].params == dead.params
    assert st.fail_interrupted_trials(study) == []  # idempotent
    retried = study.ask(dist)
    assert retried.params == dead.params


def test_a_fidelity_stored_before_a_new_knob_continues_with_its_default(tmp_path):
    storage = _storage(tmp_path)
    study = st.create_or_continue("s", storage, IDENTITY.replace(fidelity=Fidelity()))
    old = {k: v for k, v in Fidelity().to_dict().items() if k != "pooling"}
    study.set_user_attr("fidelity", old)  # as a study stored before the pooling knob existed
    st.create_or_continue("s", storage, IDENTITY.replace(fidelity=Fidelity()))
    with pytest.raises(StudyError, match="created with fidelity"):
        st.create_or_continue("s", storage, IDENTITY.replace(fidelity=Fidelity(pooling="mean")))


def _holds_lock_elsewhere(study: optuna.Study, url: str) -> bool:
    """Whether another connection (or file handle) finds the study's budget lock taken."""
    import fcntl
    import zlib

    if url.startswith("sqlite"):
        with open(url.removeprefix("sqlite:///") + ".autopeft-lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False
    import sqlalchemy

    key = zlib.crc32(f"autopeft:{study.study_name}".encode()) - 2**31
    with sqlalchemy.create_engine(url).connect() as other:
        taken = not other.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        if not taken:
            other.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return taken


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_budget_lock_excludes_other_workers(tmp_path, kind):
    """The lock is really taken on a study as the search loop opens it (Optuna caches the RDB storage)."""

    def check(url: str) -> None:
        study = optuna.create_study(storage=st.open_storage(url), study_name="s", directions=["maximize", "minimize"])
        assert not _holds_lock_elsewhere(study, url)
        with budget_lock(study):
            assert _holds_lock_elsewhere(study, url)
        assert not _holds_lock_elsewhere(study, url)

    if kind == "sqlite":
        check(f"sqlite:///{tmp_path / 's.db'}")
    else:
        with postgres_server(tmp_path / "pg") as url:
            check(url)
