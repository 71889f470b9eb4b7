"""Alembic's environment for the state store.

``backends._schema.migrate`` runs it with an open connection in ``config.attributes``, inside the
transaction that holds the migration lock. The ``alembic`` command line runs it only to draft a
revision with ``--autogenerate``, against the database given with ``-x url=...``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from backends._schema import VERSION_TABLE
from backends._store import _META


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=_META,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things: a drafted revision copies the table instead, which
        # PostgreSQL runs as plain ALTERs.
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_shared = context.config.attributes.get("connection")
if _shared is not None:
    _run(_shared)
else:
    _url = context.get_x_argument(as_dictionary=True).get("url")
    if _url is None:
        raise SystemExit("name the database to compare with: alembic -x url=sqlite:///... ")
    _engine = create_engine(_url, poolclass=NullPool)
    with _engine.connect() as _connection:
        _run(_connection)
