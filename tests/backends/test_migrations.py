"""The state store's schema migrations, on SQLite and on PostgreSQL (an embedded server from
pgserver): a store of the previous version upgrades in place, a new one matches the tables the
queries use, concurrent first opens agree, and a database shared with MLflow keeps working."""

from __future__ import annotations

import importlib
import multiprocessing
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    column,
    create_engine,
    insert,
    inspect,
    select,
    table,
    update,
)

import backends._migrations
from backends import StateStore
from backends._schema import HEAD, VERSION_TABLE
from backends._store import _ENGINES, _ENGINES_LOCK, _META
from qhybrid.core import TrackingError
from qhybrid_control import JOBS_META
from registry import SHARED_META

# Every table the migrations create, as the queries define them. A revision that creates tables
# defined elsewhere adds their MetaData here.
QUERIED = (_META, JOBS_META, SHARED_META)


def _revisions() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(Path(backends._migrations.__file__).parent))


NEWEST = _revisions().get_current_head()

# -- the previous version: the tables as commit 8a66766 made them, with create_all -----------

OLD_META = MetaData()

Table(
    "submissions", OLD_META,
    Column("key", String(64), primary_key=True),
    Column("backend", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # submitting | submitted | done | failed
    Column("job_id", String(200)),
    Column("error", Text),
    Column("owner", String(64)),  # the process that claimed the key last
    Column("attempts", Integer, nullable=False, default=0),
    Column("flow_run_id", String(64)),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
)

Table(
    "local_jobs", OLD_META,
    Column("job_id", String(64), primary_key=True),
    Column("backend", String(200), nullable=False),
    Column("tag", String(64), index=True),
    Column("status", String(16), nullable=False),  # DONE | ERROR | CANCELLED
    Column("result", Text),
    Column("error", Text),
    Column("created", Float, nullable=False),
)

Table(
    "breakers", OLD_META,
    Column("backend", String(200), primary_key=True),
    Column("state", String(16), nullable=False),  # closed | open | half-open
    Column("failures", Integer, nullable=False),
    Column("opened_at", Float),
    Column("trips", Integer, nullable=False),
    Column("last_error", Text),
)

Table(
    "leases", OLD_META,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("flow_run_id", String(64), index=True),
    Column("backend", String(200), nullable=False),
    Column("kind", String(16), nullable=False),  # job | session | batch
    Column("provider_id", String(200), nullable=False),
    Column("status", String(16), nullable=False),  # open | closed | cancelled
    Column("opened", Float, nullable=False),
    Column("closed", Float),
    Column("note", Text),
)

OLD_ROWS: dict[str, list[dict[str, Any]]] = {
    "submissions": [
        {"key": "k-done", "backend": "aer", "kind": "sample", "status": "done", "job_id": "j-1",
         "error": None, "owner": "p-1", "attempts": 1, "flow_run_id": "run-1", "created": 1.5,
         "updated": 2.5},
        {"key": "k-failed", "backend": "ibm:x", "kind": "estimate", "status": "failed",
         "job_id": None, "error": '{"error": "ExecutionError"}', "owner": "p-2", "attempts": 3,
         "flow_run_id": None, "created": 3.0, "updated": 4.0},
    ],
    "local_jobs": [
        {"job_id": "j-1", "backend": "aer", "tag": "t-1", "status": "DONE",
         "result": '{"counts": {"00": 5}}', "error": None, "created": 1.5},
    ],
    "breakers": [
        {"backend": "ibm:x", "state": "open", "failures": 5, "opened_at": 10.0, "trips": 2,
         "last_error": "down"},
    ],
    # No ids: the database numbers them, so a PostgreSQL sequence is where the old code left it.
    "leases": [
        {"flow_run_id": "run-1", "backend": "ibm:x", "kind": "session", "provider_id": "s-1",
         "status": "open", "opened": 5.0, "closed": None, "note": None},
        {"flow_run_id": None, "backend": "ibm:x", "kind": "job", "provider_id": "j-2",
         "status": "cancelled", "opened": 6.0, "closed": 7.0, "note": "flow cancelled"},
    ],
}


def _expected_rows() -> dict[str, list[dict[str, Any]]]:
    rows = {name: [dict(row) for row in rows] for name, rows in OLD_ROWS.items()}
    for number, lease in enumerate(rows["leases"], start=1):
        lease["id"] = number
    return rows


def _create_previous_store(url: str, *, rows: bool = True) -> None:
    engine = create_engine(url)
    try:
        OLD_META.create_all(engine)
        if rows:
            with engine.begin() as conn:
                for name, values in OLD_ROWS.items():
                    conn.execute(insert(OLD_META.tables[name]), values)
    finally:
        engine.dispose()


def _rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as conn:
        return {name: [dict(row._mapping) for row in conn.execute(
                    select(t).order_by(*t.primary_key.columns))]
                for name, t in OLD_META.tables.items()}


def _version(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(column("version_num")).select_from(
            table(VERSION_TABLE))).scalars())


def _schema_diff(engine: Engine, *, ignore: set[str] = frozenset()) -> list[Any]:
    """What Alembic's autogenerate would change to make the database equal ``QUERIED``."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    def include_name(name: str | None, kind: str, _parent: object) -> bool:
        return not (kind == "table" and name in ignore)

    queried = MetaData()
    for metadata in QUERIED:
        for each in metadata.tables.values():
            each.to_metadata(queried)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "version_table": VERSION_TABLE, "compare_type": True,
            "compare_server_default": True, "include_name": include_name})
        return list(compare_metadata(context, queried))


def _forget(url: str) -> None:
    """Drop this process's engine of ``url``, so that the next open migrates again."""
    with _ENGINES_LOCK:
        engine = _ENGINES.pop(url, None)
    if engine is not None:
        engine.dispose()


# -- databases ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from platformdirs.api import RuntimeDirWarning

    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir when imported; without XDG_RUNTIME_DIR it
        # warns and falls back to /tmp, which is what a test wants.
        warnings.simplefilter("ignore", RuntimeDirWarning)
        import pgserver

        server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty database, private to the test."""
    if request.param == "memory":  # a private database per engine: nothing to clean
        yield "sqlite://"
        return
    if request.param == "sqlite":
        made = f"sqlite:///{tmp_path}/state.db"
    else:
        server = request.getfixturevalue("postgres_server")
        name = f"store_{uuid.uuid4().hex[:12]}"
        server.psql(f"CREATE DATABASE {name};")
        made = server.get_uri(database=name).replace("postgresql://", "postgresql+psycopg://", 1)
    yield made
    _forget(made)


# -- upgrades ----------------------------------------------------------------------------------

def test_a_store_of_the_previous_version_upgrades_in_place(url: str) -> None:
    _create_previous_store(url)

    store = StateStore(url)

    assert _rows(store.engine) == _expected_rows()
    assert _version(store.engine) == [NEWEST]
    assert _schema_diff(store.engine) == []
    assert store.ledger("k-done").job_id == "j-1"
    assert store.claim("k-new", "aer", "sample", "run-2", owner="p-3", stale_after=30)
    assert not store.claim("k-done", "aer", "sample", "run-2", owner="p-3", stale_after=30)
    store.open_lease("run-2", "ibm:x", "job", "j-3")  # numbered after the old leases
    assert [lease.id for lease in store.leases()] == [1, 2, 3]


@pytest.mark.parametrize("url", ["sqlite", "postgresql", "memory"], indirect=True)
def test_a_new_store_is_at_head_and_equals_the_tables_of_the_queries(url: str) -> None:
    store = StateStore(url)

    assert _version(store.engine) == [NEWEST]
    assert _schema_diff(store.engine) == []
    assert store.claim("k", "aer", "sample", None, owner="p", stale_after=30)


def test_head_is_the_last_revision_of_one_linear_chain() -> None:
    scripts = _revisions()
    assert scripts.get_heads() == [HEAD]  # the fast path's idea of head is the revisions' own
    chain = list(reversed(list(scripts.walk_revisions())))  # base first
    assert [s.revision for s in chain] == [f"{n:04d}" for n in range(1, len(chain) + 1)]
    assert [s.down_revision for s in chain] == [None] + [s.revision for s in chain[:-1]]
    for script in chain:
        assert Path(script.path).name.startswith(f"{script.revision}_"), script.path


def test_a_store_at_head_opens_without_loading_alembic(url: str) -> None:
    StateStore(url).put_local_job("j-1", "aer", "t", "DONE", "{}", None)

    # A new process, as every flow run and worker is: the check at head must stay one query.
    opened = subprocess.run(
        [sys.executable, "-c",
         "import sys; from backends import StateStore; "
         f"print(StateStore({url!r}).local_job('j-1'), 'alembic' in sys.modules)"],
        capture_output=True, text=True, check=True, timeout=120)

    assert opened.stdout.strip() == "('DONE', '{}', None) False"
    assert _version(StateStore(url).engine) == [NEWEST]


# -- stores that must not be touched -----------------------------------------------------------

def test_a_store_migrated_by_a_newer_qhybrid_is_refused(url: str) -> None:
    store = StateStore(url)
    store.put_local_job("j-1", "aer", "t", "DONE", "{}", None)
    with store.engine.begin() as conn:
        conn.execute(update(table(VERSION_TABLE, column("version_num"))).values(
            version_num="9999"))
    _forget(url)

    with pytest.raises(TrackingError, match="revision 9999, newer than this qhybrid knows"):
        StateStore(url)
    try:  # its engine was forgotten, so nothing else closes the connections it opens now
        assert _version(store.engine) == ["9999"]
        assert store.local_job("j-1") == ("DONE", "{}", None)
    finally:
        store.engine.dispose()


def test_a_database_with_only_some_of_the_old_tables_is_refused(url: str) -> None:
    engine = create_engine(url)
    try:
        OLD_META.tables["submissions"].create(engine)
        OLD_META.tables["leases"].create(engine)
    finally:
        engine.dispose()

    with pytest.raises(TrackingError, match="tables leases, submissions but not breakers"):
        StateStore(url)


def test_a_migration_that_fails_half_way_leaves_the_database_as_it_was(url: str) -> None:
    # An index of another table takes the name of 0001's last index: 0001 fails after it has
    # created all four tables.
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE other (x INTEGER)")
            conn.exec_driver_sql("CREATE INDEX ix_leases_flow_run_id ON other (x)")

        with pytest.raises(TrackingError, match="ix_leases_flow_run_id"):
            StateStore(url)

        assert set(inspect(engine).get_table_names()) == {"other"}
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_leases_flow_run_id")
    finally:
        engine.dispose()
    assert _version(StateStore(url).engine) == [NEWEST]


# -- concurrency -------------------------------------------------------------------------------

def _open_at_once(url: str, barrier: Any, key: str) -> None:
    """One process of the race: opens the new store and claims ``key``."""
    # Loaded before the barrier, so that the processes race on the database, not on imports.
    for module in ("alembic.command", "alembic.config", "alembic.script"):
        importlib.import_module(module)

    barrier.wait(timeout=120)
    assert StateStore(url).claim(key, "aer", "sample", None, owner=key, stale_after=30)


def test_processes_that_open_a_new_store_at_once_all_succeed(url: str) -> None:
    spawn = multiprocessing.get_context("spawn")  # fork would copy this process's engines
    barrier = spawn.Barrier(4)
    processes = [spawn.Process(target=_open_at_once, args=(url, barrier, f"k-{n}"))
                 for n in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=180)

    assert [process.exitcode for process in processes] == [0, 0, 0, 0]
    store = StateStore(url)
    assert _version(store.engine) == [NEWEST]
    assert store.ledger_counts() == {"submitting": 4}


# -- a database shared with MLflow -------------------------------------------------------------

@pytest.mark.parametrize("previous", [True, False], ids=["previous-store", "new-store"])
def test_a_database_shared_with_mlflow_migrates_and_mlflow_keeps_working(
        url: str, previous: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root is ./mlruns
    client = MlflowClient(tracking_uri=url)
    client.search_experiments()  # creates MLflow's tables, at MLflow's head
    before = client.create_experiment("before")
    if previous:
        _create_previous_store(url)
    probe = create_engine(url)
    try:
        mlflow_tables = set(inspect(probe).get_table_names()) - set(_META.tables)
        with probe.connect() as conn:
            mlflow_revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    finally:
        probe.dispose()
    assert mlflow_revision

    store = StateStore(url)

    assert _version(store.engine) == [NEWEST]
    assert _schema_diff(store.engine, ignore=mlflow_tables) == []
    if previous:
        assert _rows(store.engine) == _expected_rows()
    assert store.claim("k-new", "aer", "sample", None, owner="p", stale_after=30)
    with store.engine.connect() as conn:  # MLflow refuses to open a store not at its revision
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").all() == (
            mlflow_revision)
    run = client.create_run(client.create_experiment("after"))
    client.log_metric(run.info.run_id, "energy", -1.0)
    assert client.get_experiment(before).name == "before"
    assert client.get_metric_history(run.info.run_id, "energy")[0].value == -1.0
