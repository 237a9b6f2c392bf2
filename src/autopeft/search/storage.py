"""AutoPEFT studies on Optuna storage: what a study remembers, and recovering interrupted trials.

A study stores, as study user attributes, what its trials mean (model, task, space, fidelity,
number of labels, metric); it refuses to be continued with different ones. Each trial stores its
configuration, metric, parameters, timings and worker as trial user attributes.

Trials interrupted by a dead process are failed and their configuration is queued again (Optuna's
`RetryHeartbeatStaleTrialCallback`): at once when the process ran on this host and is gone, and
through Optuna's heartbeat (other hosts) once it is older than the grace period.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autopeft.search.record import INTERRUPTED_REASON, TRIAL_FAIL_REASON, TRIAL_WORKER, StudyError, StudyRecord

if TYPE_CHECKING:
    import optuna

DEFAULT_STUDY_DIR = Path("studies")  # SQLite studies go here unless --storage says otherwise
DEFAULT_DB = "autopeft.db"
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 60
MAX_RETRIES = 3


def default_storage_url() -> str:
    """`$AUTOPEFT_STORAGE`, else an SQLite file in ./studies/."""
    env = os.environ.get("AUTOPEFT_STORAGE")
    if env:
        return env
    return f"sqlite:///{DEFAULT_STUDY_DIR / DEFAULT_DB}"


def open_storage(url: str | None, create: bool = True) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats, so trials of dead workers are failed and retried.

    `create=False` (commands that only read a study, or work on an existing one): an SQLite file
    that does not exist is refused, and nothing (no folder, no empty database) is created.
    """
    import optuna
    import sqlalchemy.exc
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    url = url or default_storage_url()
    if "://" not in url:
        raise StudyError(f"storage {url!r} is not a database URL (e.g. sqlite:///studies/autopeft.db)")
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not create and not path.is_file():
            raise StudyError(f"no study storage at {url}: {path} does not exist")
        if create and path.exists() and not path.is_file():
            raise StudyError(f"storage {url}: {path} is not a file")
        if create and path.parent and not path.parent.exists():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StudyError(f"cannot create the folder of storage {url}: {err.strerror}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if url in _SERVER_STORAGES:
        return _SERVER_STORAGES[url]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = RDBStorage(
                url,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES),
                engine_kwargs=_engine_kwargs(url),
            )
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StudyError(f"cannot open storage {_redact(url)}: {first_line}") from None
    if not url.startswith("sqlite"):
        _SERVER_STORAGES[url] = storage
    return storage


# A database server's storages, one per URL and process: each holds a pool of connections, and a
# server allows only so many (an SQLite file costs nothing to reopen, and may be replaced between uses).
_SERVER_STORAGES: dict[str, Any] = {}


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("postgresql"):
        # a small pool per process: a server shared by many workers allows only so many connections
        return {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True, "pool_size": 3, "max_overflow": 4}
    if url.startswith("sqlite"):
        # Several local processes on one SQLite file: wait for the lock instead of failing.
        return {"connect_args": {"timeout": 60}}
    return {}


def _redact(url: str) -> str:
    """The URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """The names of the studies in `storage`, sorted."""
    import optuna

    return sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))


def load_study(name: str, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """An existing study, or a StudyError naming the studies that exist."""
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = study_names(storage)
        known = ", ".join(names) if names else "none"
        raise StudyError(f"no study named {name!r} in this storage (studies there: {known})") from None


def open_study(name: str, url: str | None) -> tuple[optuna.Study, StudyRecord]:
    """An existing AutoPEFT study and its record, for the commands that work on one (report, worker,
    retrain, transfer, export): the name is checked, no storage is created, and a study autopeft
    search did not make is refused (`StudyRecord.load`)."""
    from autopeft.search.record import check_study_name

    check_study_name(name)
    study = load_study(name, open_storage(url, create=False))
    return study, StudyRecord.load(study)


def create_or_continue(name: str, storage: optuna.storages.BaseStorage, record: StudyRecord) -> optuna.Study:
    """Create the study with `record`, or continue it after checking it was made for the same job.

    Nothing is written when the identities differ; on continuing, the settings that may change
    (trial count, budget, seed, sampler options, data) are updated.
    """
    import optuna

    if name in study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
        record.check_continues(StudyRecord.load(study), name)
        record.save(study)
        return study
    study = optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize"])
    record.save(study)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([record.metric, "params"])
    return study


# --- workers and interrupted trials ----------------------------------------------------------


def worker_id() -> dict[str, Any]:
    """Who runs a trial: host, process id and the process's start time (pids are reused)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _process_start(os.getpid())}


def _process_start(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]  # field 22: start time in clock ticks
    except (OSError, IndexError):
        return None


def _is_alive(worker: dict[str, Any]) -> bool:
    if worker.get("host") != socket.gethostname():
        return True  # another machine: Optuna's heartbeat decides
    start = _process_start(int(worker["pid"]))
    return start is not None and start == worker.get("start")


def fail_interrupted_trials(study: optuna.Study) -> list[int]:
    """Fail RUNNING trials whose worker died (this host at once, others by heartbeat); retry them.

    Returns the numbers of the trials failed here.
    """
    import optuna
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    failed = []
    storage = study._storage
    callback = storage.get_heartbeat_stale_trial_callback()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(TRIAL_WORKER)
        if worker is None or _is_alive(worker):
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, TRIAL_FAIL_REASON, INTERRUPTED_REASON)
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process got there first
        failed.append(trial.number)
        if callback is not None:
            callback(study, storage.get_trial(trial._trial_id))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fail_stale_trials(study)
    return failed
