"""The MLflow store's seam: MLflow's errors translated into ``TrackingError`` (:func:`mapped`,
around every ``Tracker`` call), and the store opened: reached within a deadline, a new SQLite
store copied from an empty template of the installed MLflow version, and every SQLite store set
to write-ahead-log mode at opening.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import httpx
from mlflow import __version__ as mlflow_version
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy import create_engine
from sqlalchemy.exc import SQLAlchemyError

from qhybrid.core import TrackingError, exclusive, redact_text, redact_url

log = logging.getLogger("qhybrid.tracking")

_P = ParamSpec("_P")
_R = TypeVar("_R")


def mapped(action: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Translate MLflow's and the file system's errors into TrackingError, naming ``action``;
    a password in the store's URI is masked in the message."""

    def wrap(fn: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(fn)
        def inner(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return fn(*args, **kwargs)
            except (MlflowException, OSError, SQLAlchemyError) as exc:  # SQL store at the seam
                uris = [getattr(args[0], "tracking_uri", ""), *(a for a in args
                                                                if isinstance(a, str))]
                text = exc.message if isinstance(exc, MlflowException) else str(exc)
                raise TrackingError(
                    f"MLflow could not {action}: {redact_text(text, *uris)}") from None

        return inner

    return wrap


_PROBE_SECONDS = 10.0
_REACHED: set[str] = set()


def _probe(tracking_uri: str) -> None:
    """Reach the tracking store once, within ``_PROBE_SECONDS``: MLflow itself retries an
    unreachable database for minutes before it gives up.

    Raises:
        TrackingError: The store does not answer (its URI's password masked).
    """
    if tracking_uri in _REACHED or tracking_uri.startswith(("sqlite:", "file:")) \
            or "://" not in tracking_uri:
        return
    try:
        if tracking_uri.startswith(("http://", "https://")):
            httpx.get(f"{tracking_uri.rstrip('/')}/health",
                      timeout=_PROBE_SECONDS).raise_for_status()
        else:
            args = {"connect_timeout": int(_PROBE_SECONDS)} \
                if tracking_uri.startswith("postgresql") else {}
            engine = create_engine(tracking_uri, connect_args=args)
            try:
                with engine.connect():
                    pass
            finally:
                engine.dispose()
    except (httpx.HTTPError, SQLAlchemyError, ImportError) as exc:
        raise TrackingError(f"the MLflow store {redact_url(tracking_uri)} does not answer: "
                            f"{redact_text(str(exc), tracking_uri)}") from None
    _REACHED.add(tracking_uri)


@mapped("open the tracking store")
def open_client(tracking_uri: str) -> MlflowClient:
    """A client of both the tracking and the registry store at ``tracking_uri``, reached
    first (:func:`_probe`); a new SQLite store is copied from the template and set to WAL.

    Raises:
        TrackingError: The store does not answer or cannot be opened.
    """
    _probe(tracking_uri)
    if not tracking_uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    # MLflow creates (migrates) a new database on first use; two first processes at once
    # would both migrate it and one would fail. Make the client (which may open its stores)
    # and touch both stores under a lock.
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    with exclusive(database.with_name(database.name + ".lock")):
        _from_template(database)
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        client.search_experiments(max_results=1)
        client.search_registered_models(max_results=1)
        _write_ahead(database)
    return client


def _write_ahead(database: Path) -> None:
    """Keep a SQLite store in write-ahead-log mode (a setting of the file, kept once set).

    In SQLite's default rollback-journal mode every commit writes and syncs a journal and the
    database: MLflow commits once per call, and alone its calls took 6-26 ms each here,
    35-55 % less in WAL mode, where a commit appends to the log (docs/benchmarks.md). Readers
    (the MLflow UI) no longer wait for a writer either. A store another process holds in the
    other mode stays as it is until the next opening.
    """
    try:
        with contextlib.closing(sqlite3.connect(database, timeout=5)) as connection:
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    except sqlite3.Error as exc:
        mode = repr(exc)
    if str(mode).lower() != "wal":  # e.g. a file system without shared memory
        log.info("MLflow store %s left in its journal mode: %s", database, mode)


def template_path() -> Path:
    """Where this machine keeps an empty store of the installed MLflow version:
    ``$XDG_CACHE_HOME/qhybrid`` (default ``~/.cache/qhybrid``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "qhybrid" / f"mlflow-{mlflow_version}-empty.db"


_TEMPLATE_REFUSED: list[str] = []
"""Why the template could not be used, once it could not (one warning per process)."""


def _from_template(database: Path) -> None:
    """Start a new SQLite store as a copy of an empty one.

    MLflow builds a new database by running every one of its schema migrations, about 1.3 s
    here; that happens once per machine and MLflow version, for the template (made through
    MLflow itself, its default experiment then removed: MLflow adds it again on opening the
    copy, with this store's artifact location). A copy that fails SQLite's integrity check or
    is not at MLflow's latest schema revision is discarded with its template (the next new
    store makes it again). Whatever goes wrong leaves the new store to MLflow, as before,
    with one warning per process. Called under the store's lock.
    """
    if database.exists() and database.stat().st_size > 0:
        return
    partial = database.with_name(database.name + ".new")
    try:
        template = template_path()
        if not template.is_file():
            _make_template(template)
        shutil.copyfile(template, partial)
        try:
            problem = _unsound(partial)
        except sqlite3.Error as exc:  # not a database at all
            problem = str(exc)
        if problem:
            template.unlink(missing_ok=True)
            raise sqlite3.DatabaseError(f"{template}: {problem}; removed")
        os.replace(partial, database)
    except (OSError, RuntimeError, sqlite3.Error, SQLAlchemyError, MlflowException) as exc:
        partial.unlink(missing_ok=True)
        if not _TEMPLATE_REFUSED:
            _TEMPLATE_REFUSED.append(str(exc))
            log.warning("new MLflow stores are built by MLflow's migrations (about 1.3 s "
                        "each): the empty store could not be used (%s)", exc)


def _unsound(copy: Path) -> str | None:
    """What is wrong with a copied empty store, if anything."""
    from mlflow.store.db.utils import _get_latest_schema_revision

    with contextlib.closing(sqlite3.connect(copy)) as connection:
        checks = [row[0] for row in connection.execute("PRAGMA quick_check")]
        if checks != ["ok"]:
            return f"integrity check: {'; '.join(map(str, checks[:3]))}"
        revisions = [row[0] for row in connection.execute(
            "SELECT version_num FROM alembic_version")]
    latest = _get_latest_schema_revision()  # type: ignore[no-untyped-call]
    revision = revisions[0] if len(revisions) == 1 else revisions
    if revision != latest:
        return f"schema revision {revision}, MLflow's latest is {latest}"
    return None


def _make_template(template: Path) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    template.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=template.parent, prefix="making-") as scratch:
        built = Path(scratch) / template.name
        store = SqlAlchemyStore(  # type: ignore[no-untyped-call]
            f"sqlite:///{built}", str(Path(scratch) / "artifacts"))
        store.engine.dispose()
        with contextlib.closing(sqlite3.connect(built)) as connection, connection:
            connection.execute("DELETE FROM experiments WHERE experiment_id = 0")
        os.replace(built, template)  # whole or not at all, also for a process racing this one
