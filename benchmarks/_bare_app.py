"""The ceiling of the accept benchmarks: a bare FastAPI endpoint that stores a request.

``POST /v1/jobs`` parses the JSON body, inserts one row (a new id, the body as text, the time)
into one table in one transaction, and answers 202 with the id. No validation beyond "a JSON
object", no middleware, no logging. It runs like the job API: a synchronous endpoint (so in
Starlette's thread pool), SQLAlchemy Core, and the state store's engine settings (for SQLite,
WAL and ``synchronous=NORMAL`` on every connection, a 30 s busy timeout).

Run it with ``uvicorn --factory benchmarks._bare_app:create_app`` and ``BENCH_BARE_URL`` set
to a SQLAlchemy URL (``sqlite:///...`` or ``postgresql+psycopg://...``).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Annotated, Any

from fastapi import Body, FastAPI
from sqlalchemy import Column, Float, MetaData, String, Table, Text, create_engine, event, insert
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

URL_VARIABLE = "BENCH_BARE_URL"

METADATA = MetaData()
ACCEPTED = Table(
    "bare_accepted", METADATA,
    Column("id", String(36), primary_key=True),
    Column("body", Text, nullable=False),
    Column("created", Float, nullable=False),
)


def _sqlite_pragmas(connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # The same pragmas as the state store (backends/_store.py), whose module is private.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def open_engine(url: str) -> Engine:
    """An engine set up as the state store sets up its own, with the table created."""
    if url.startswith("sqlite:///"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    METADATA.create_all(engine)
    return engine


def create_app() -> FastAPI:
    """The bare app on the database ``BENCH_BARE_URL`` names."""
    engine = open_engine(os.environ[URL_VARIABLE])
    app = FastAPI(title="bare accept")

    @app.post("/v1/jobs", status_code=202)
    def submit(body: Annotated[dict[str, Any], Body()]) -> dict[str, str]:
        job_id = str(uuid.uuid4())
        with engine.begin() as conn:
            conn.execute(insert(ACCEPTED).values(id=job_id, body=json.dumps(body),
                                                 created=time.time()))
        return {"id": job_id}

    return app
