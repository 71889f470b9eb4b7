"""The state store's schema version: Alembic migrations, applied whenever a store is opened.

The tables are defined once, in ``backends._store`` (``_META``, which every query uses); the
revisions in ``backends/_migrations/versions`` bring a database to them, as one linear chain
``0001``, ``0002``, ... (how to add one: the docstring of ``backends._migrations``).

Every process runs :func:`migrate` the first time it opens a store URL. Three cases:

- The store is at :data:`HEAD` already (nearly always): one small query of the version table;
  Alembic is not even imported.
- The store was created before it had migrations (by ``MetaData.create_all``): it holds the four
  tables of revision ``0001`` and no version table. It is stamped at ``0001``, then upgraded,
  so that no row is lost.
- Otherwise (a new database, or an older revision): ``upgrade head``.

An upgrade runs in one transaction, under a lock that makes a second process wait and then find
the work done: an ``flock`` on ``<database file>.lock`` and ``BEGIN IMMEDIATE`` for SQLite, a
transaction-level advisory lock for PostgreSQL. Both databases roll DDL back, so a revision that
fails half-way leaves the store as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Column, Connection, Engine, MetaData, String, Table, func, inspect, select

from qhybrid.core import TrackingError, exclusive

VERSION_TABLE = "qhybrid_alembic_version"
"""Where the store records its revision. Not Alembic's default ``alembic_version``: MLflow keeps
its own revision there (and ``alembic_version_auth`` for its auth server), and a team may well
keep MLflow's store and this one in the same PostgreSQL database."""

HEAD = "0006"
"""The newest revision in ``_migrations/versions``. Only the fast path reads it (a store already
there needs no Alembic); the upgrade itself always goes to Alembic's head, so a stale value costs
time, never correctness. ``tests/backends/test_migrations.py`` keeps the two equal."""

_MIGRATIONS = Path(__file__).parent / "_migrations"

# The revision that describes the tables ``create_all`` made before there were migrations.
_BASELINE = "0001"
_BASELINE_TABLES = frozenset({"submissions", "local_jobs", "breakers", "leases"})

# One fixed key for every qhybrid process and version ("qhybrid!" as a big-endian int64, so it is
# recognisable in pg_locks). MLflow takes no advisory locks.
_PG_LOCK_KEY = int.from_bytes(b"qhybrid!", "big")

_VERSION = Table(VERSION_TABLE, MetaData(),
                 Column("version_num", String(32), primary_key=True))


def migrate(engine: Engine) -> None:
    """Bring the state store at ``engine`` to the newest schema revision.

    Safe when several processes open the same store at once: one migrates, the others wait for it
    and then find nothing to do.

    Args:
        engine: The store's engine (SQLite or PostgreSQL).

    Raises:
        TrackingError: The store is at a revision this qhybrid does not know (a newer qhybrid
            migrated it), holds only some of the tables of a store made before migrations, or
            a revision cannot be loaded.
        SQLAlchemyError: The database cannot be read or changed.
    """
    with _file_lock(engine):
        with engine.connect() as conn:
            if _revisions(conn) == {HEAD}:
                return
        with engine.begin() as conn:
            serialise(conn)
            _upgrade(conn)


def _revisions(conn: Connection) -> set[str]:
    if not inspect(conn).has_table(VERSION_TABLE):
        return set()
    return set(conn.execute(select(_VERSION.c.version_num)).scalars())


@contextlib.contextmanager
def _file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
        yield  # an in-memory store is private to its engine; nothing else can race it
        return
    assert database is not None
    # The same lock file as before migrations, so a process of the previous version that
    # creates the tables at the same moment waits too.
    with exclusive(Path(database + ".lock")):
        yield


def serialise(conn: Connection) -> None:
    """Serialise the transaction on ``conn`` with every other one that calls this (a migration,
    a claim against the QPU budget) until it ends: qhybrid's advisory lock on PostgreSQL;
    on SQLite ``BEGIN IMMEDIATE``, the database's write lock, taken now."""
    if conn.dialect.name == "postgresql":
        # Held until the transaction ends, i.e. until it is committed or rolled back.
        conn.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
    elif conn.dialect.name == "sqlite":
        # pysqlite opens no transaction before DDL, so each CREATE would commit on its own;
        # an explicit one makes the upgrade all-or-nothing, and IMMEDIATE takes the write lock
        # now, before the version table is read, not at the first write.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _upgrade(conn: Connection) -> None:
    # Alembic adds ~70 ms of imports: only a store that needs upgrading pays them.
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    config = Config()
    # ConfigParser interpolates '%': a path holding one must not break the migrations.
    config.set_main_option("script_location", str(_MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = conn  # env.py runs on it, inside this transaction
    current = _revisions(conn)
    try:
        known = {script.revision for script in ScriptDirectory.from_config(config)
                 .walk_revisions()}
        if current - known:
            raise TrackingError(
                f"the state store's schema is at revision {', '.join(sorted(current - known))}, "
                f"newer than this qhybrid knows (its newest is {HEAD}): a newer qhybrid has "
                "migrated it; upgrade qhybrid to use it")
        if not current:
            present = _BASELINE_TABLES & set(inspect(conn).get_table_names())
            if present == _BASELINE_TABLES:  # made by create_all, before there were migrations
                command.stamp(config, _BASELINE)
            elif present:
                raise TrackingError(
                    f"the database holds the state store tables {', '.join(sorted(present))} "
                    f"but not {', '.join(sorted(_BASELINE_TABLES - present))}, and no "
                    f"{VERSION_TABLE} table: it is not a store qhybrid made; use another "
                    "database or remove those tables")
        command.upgrade(config, "head")
    except CommandError as exc:  # a revision file that cannot be loaded or applied
        raise TrackingError(f"cannot migrate the state store: {exc}") from exc
