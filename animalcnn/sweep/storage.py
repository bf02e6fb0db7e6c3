"""Where a sweep's study lives and how it is opened: the journal file in the sweep folder
(one machine) or a database URL (several, with Optuna's heartbeat and the re-queueing of
a dead trial), the study made once with the settings it keeps, its sampler and pruner.
No Keras: opening a study imports only Optuna."""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from animalcnn import errors
from animalcnn.errors import ConfigError, UserError
from animalcnn.sweep.spec import BASE, SweepSpec

JOURNAL = "sweep.journal"
LOCK = ".sweep.lock"  # the file lock of a sweep whose storage is not a database server
SETTINGS = "sweep"  # the study's user attribute holding the settings it was made with
T = TypeVar("T")


# A database driver per URL scheme, and what installs it.
DRIVERS = {
    "postgresql": "pip install 'animalcnn[sweep-db]' (psycopg 3)",
    "mysql": "pip install mysqlclient, or a mysql+pymysql:// URL with pip install PyMySQL",
}
OPEN_TRIES = 10  # processes that start together race to create the tables and the study
# A dead trial is failed and its point queued again (WAITING), its attributes (the run
# folder to resume) kept: by Optuna's heartbeat check on a database, by ours on the journal.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    REQUEUE = RetryHeartbeatStaleTrialCallback()


def shown_url(url: str) -> str:
    """A storage URL as errors show it: its password, if any, left out."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)


def storage_for(spec: SweepSpec, sweep_dir: Path, url: str | None) -> Any:
    """The storage named by `url`, or the journal file in the sweep folder; one line when
    it cannot be opened (a bad URL, a missing driver or folder, a damaged journal). Its
    tables are made once, whichever of the processes started together gets there first."""
    try:
        if url:
            return racing(lambda: database(url, spec))
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        sweep_dir.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(sweep_dir / JOURNAL)))
    except Exception as exc:  # SQLAlchemy, drivers and the journal raise many kinds
        where = f"--storage {shown_url(url)}" if url else str(sweep_dir / JOURNAL)
        if isinstance(exc, ImportError):
            dialect = (url or "").split(":", 1)[0]
            scheme, _, driver = dialect.partition("+")
            how = f"pip install {driver}" if driver else DRIVERS.get(scheme, "install its driver")
            raise UserError(f"{where}: no driver for {dialect}: {how}") from None
        raise UserError(f"{where}: cannot be opened ({gist(exc, url)})") from None


def database(url: str, spec: SweepSpec) -> optuna.storages.RDBStorage:
    """A database storage with Optuna's heartbeat: a running trial whose heartbeat (stamped
    with the server's clock) is older than the grace period is failed and re-queued. A
    connection the server dropped (a restart) is replaced before it is used."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs={"pool_pre_ping": True},
            heartbeat_interval=spec.heartbeat_seconds,
            grace_period=spec.grace_seconds,
            heartbeat_stale_trial_callback=REQUEUE,
        )


def racing(make: Callable[[], T]) -> T:
    """`make()`, tried again (after a short random pause) while another process is making
    the same tables or study: its integrity error is a race, not a fault."""
    for attempt in range(1, OPEN_TRIES):
        try:
            return make()
        except Exception as exc:
            if not RACE.search(f"{type(exc).__name__} {exc}"):
                raise
            time.sleep(random.uniform(0.05, 0.3) * attempt)
    return make()


@contextmanager
def exclusive(name: str, sweep_dir: Path, url: str | None) -> Iterator[None]:
    """Held while a process takes its next trial, so no two take the same point: on a
    PostgreSQL or MySQL storage the database's own lock for the sweep (held by a session
    of its own, so it reaches every machine and goes with a process that dies); on any
    other storage a file lock in the sweep folder (this machine's processes)."""
    dialect = (url or "").split(":", 1)[0].split("+", 1)[0]
    if dialect not in ("postgresql", "mysql"):
        from filelock import FileLock

        sweep_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(sweep_dir / LOCK):
            yield
        return
    import sqlalchemy

    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    take, give = {
        "postgresql": ("SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"),
        "mysql": ("SELECT GET_LOCK(:name, -1)", "SELECT RELEASE_LOCK(:name)"),
    }[dialect]
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as session:
            session.execute(sqlalchemy.text(take), {"key": key, "name": f"animalcnn:{name}"})
            try:
                yield
            finally:
                session.execute(sqlalchemy.text(give), {"key": key, "name": f"animalcnn:{name}"})
                session.commit()
    finally:
        engine.dispose()


RACE = re.compile(r"IntegrityError|UniqueViolation|already exists|duplicate key|Duplicate entry")


def gist(exc: BaseException, url: str | None = None) -> str:
    """An exception in one line (`errors.gist`), a URL in it shown without its password."""
    text = errors.gist(exc)
    return text.replace(url, shown_url(url)) if url else text


def settings(spec: SweepSpec) -> dict[str, Any]:
    """What a study's results mean: a rerun must search the same space toward the same
    goal. (The trial count, pruner and seed may change between runs.)"""
    space = {k: p.model_dump() for k, p in spec.search_space().items() if k != BASE}
    return {
        "parameters": json.loads(json.dumps(space)),
        "bases": sorted(Path(b).name for b in spec.bases),
        "set": json.loads(json.dumps(spec.set, default=str)),
        "metric": spec.metric,
        "direction": "minimize" if spec.minimise else "maximize",
        "method": spec.method,
    }


def open_study(spec: SweepSpec, storage: Any, new_study: bool = False) -> optuna.Study:
    """The sweep's study, made on first use; refused in one line when it was made with
    other settings (unless `new_study`, which starts it again, leaving old run folders)."""
    direction = "minimize" if spec.minimise else "maximize"
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # what matters, we say ourselves
    try:
        if new_study and spec.name in optuna.get_all_study_names(storage):
            old = optuna.load_study(study_name=spec.name, storage=storage)
            if SETTINGS not in old.user_attrs:  # another program's study of that name
                raise ConfigError(
                    f"--new-study: the study {spec.name} in this storage was not made by "
                    "animalcnn sweep; it is left as it is (give the sweep a new name)"
                )
            optuna.delete_study(study_name=spec.name, storage=storage)
        study = racing(
            lambda: optuna.create_study(
                study_name=spec.name,
                storage=storage,
                sampler=_sampler(spec),
                pruner=_pruner(spec),
                direction=direction,
                load_if_exists=True,
            )
        )
        stored = study.user_attrs.get(SETTINGS)
    except ValueError as exc:  # a study of this name made with another direction
        stored, study = {"direction": f"other ({exc})"}, None
    except ConfigError:
        raise
    except Exception as exc:
        raise UserError(f"sweep {spec.name}: its storage cannot be read ({gist(exc)})") from None
    wanted = settings(spec)
    if stored is None and study is not None:
        trials = study.get_trials(deepcopy=False)
        if trials and not any("process" in t.user_attrs for t in trials):
            raise ConfigError(
                f"sweep {spec.name}: the study of that name in this storage was not made by "
                "animalcnn sweep; give the sweep a new name"
            )
        study.set_user_attr(SETTINGS, wanted)  # new, or made before studies kept them
        return study
    changed = [k for k in wanted if stored.get(k) != wanted[k]]
    if changed:
        raise ConfigError(
            f"sweep {spec.name}: its study was made with other {', '.join(changed)}; "
            "give the sweep a new name, or pass --new-study to start it again"
        )
    assert study is not None
    return study


def existing_study(spec: SweepSpec, sweep_dir: Path, url: str | None) -> optuna.Study:
    """The sweep's study as it stands, to report on: refused in one line where none has
    been made in that storage (nothing is created, not even an empty journal)."""
    where = f"--storage {shown_url(url)}" if url else str(sweep_dir / JOURNAL)
    if not url and not (sweep_dir / JOURNAL).is_file():
        raise UserError(f"{where}: the sweep {spec.name} has not run here (no journal)")
    storage = storage_for(spec, sweep_dir, url)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        return optuna.load_study(study_name=spec.name, storage=storage)
    except KeyError:
        raise UserError(f"{where}: no study named {spec.name}") from None
    except Exception as exc:
        raise UserError(f"{where}: cannot be read ({gist(exc, url)})") from None


def _sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    if spec.method == "tpe":
        return optuna.samplers.TPESampler(seed=spec.seed)
    return optuna.samplers.RandomSampler(seed=spec.seed)  # a grid's points are enqueued


def _pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    """The sweep's pruner with its warm-up: no trial is pruned at an epoch up to
    `pruner_warmup_epochs`, nor before `pruner_startup_trials` trials completed (so a
    small grid is not judged on one epoch). Steps are epochs, from 1."""
    if spec.pruner == "none":
        return optuna.pruners.NopPruner()
    # Optuna prunes at step >= n_warmup_steps: the first step it may prune is warm-up + 1.
    warmup = spec.pruner_warmup_epochs + 1
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=spec.pruner_startup_trials, n_warmup_steps=warmup
        )
    return _AfterStartup(
        optuna.pruners.HyperbandPruner(min_resource=warmup), spec.pruner_startup_trials
    )


class _AfterStartup(optuna.pruners.BasePruner):
    """A pruner that prunes nothing until `startup` trials have completed (Hyperband has
    no such setting of its own)."""

    def __init__(self, inner: optuna.pruners.BasePruner, startup: int) -> None:
        self.inner, self.startup = inner, startup

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return len(done) >= self.startup and self.inner.prune(study, trial)
