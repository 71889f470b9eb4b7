"""The accept path of the job API, against a bare endpoint that only stores the request.

Groups ``accept-sqlite`` and ``accept-postgresql``: in each, ``POST /v1/jobs`` to two real
uvicorn processes on loopback (one worker each), each on its own new database of the same
kind of store:

* ``qhybrid``: the job API (``uvicorn --factory qhybrid_entrypoints.api:app_from_environment``).
  Every accept validates the request, for a ``run`` loads and validates its spec file, and
  writes the job row and its first event in one transaction.
* ``bare``: ``benchmarks/_bare_app.py``, which parses the JSON body and inserts one row. It is
  the ceiling: what uvicorn, FastAPI, SQLAlchemy and the database cost on this machine.

Each test is one load run (:mod:`benchmarks._load`): ``BENCH_ACCEPT_POSTS`` POSTs (default
300; the measurement in docs/benchmarks.md uses 10,000) at concurrency 8 or 32, from one
``httpx.AsyncClient`` in the pytest process, timed once (``pedantic``, 1 round of 1
iteration). The job API gets two bodies: the README's ``run`` example (spec loaded from
``specs/vqe-h2.yaml``) and an ``evaluate`` (no spec). The bare endpoint gets the ``run`` body
(it does not read it). ``extra_info`` holds accepted/s, p50/p95/p99, the counts, and the CPU
time per request of the server process and of the client (this process).

Both servers of a store run side by side for the whole store, and the tests run in the order
bare, qhybrid ``run``, qhybrid ``evaluate`` at concurrency 8, then the same at 32, so that the
runs compared sit next to each other in time (the machine is shared). Each server first
answers 64 untimed POSTs of each of its bodies at concurrency 32; its store then grows run by
run. Every run must get 2xx for every POST, distinct ids, and find every id in the store.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Table
from sqlalchemy.engine import Engine

from benchmarks._bare_app import ACCEPTED
from benchmarks._bare_app import open_engine as open_bare_engine
from benchmarks._load import LoadResult, run_load
from benchmarks._servers import (
    BARE_APP,
    QHYBRID_APP,
    ServerProcess,
    bare_env,
    embedded_postgres,
    prepare_job_store,
    qhybrid_env,
    stored_ids,
)
from qhybrid_control import JOBS

POSTS_VARIABLE = "BENCH_ACCEPT_POSTS"  # not QHYBRID_*: the settings refuse unknown ones
POSTS = int(os.environ.get(POSTS_VARIABLE, "300"))
WARMUP_POSTS = 64
BODIES: dict[str, dict[str, object]] = {
    "run": {"kind": "run", "spec_path": "specs/vqe-h2.yaml", "backend": "aer",
            "sla": "interactive"},
    "evaluate": {"kind": "evaluate", "model": "m@champion", "parameter_sets": [[0.1, 0.2]]},
}
CASES = [("bare", "run"), ("qhybrid", "run"), ("qhybrid", "evaluate")]  # (server, body)


@dataclass(frozen=True)
class Served:
    """A running server and where its accepted ids are stored."""

    name: str
    store: str
    process: ServerProcess
    engine: Engine
    table: Table

    @property
    def jobs_url(self) -> str:
        return f"{self.process.url}/v1/jobs"


def check(served: Served, result: LoadResult, posts: int) -> None:
    """Every POST accepted, with a distinct id, and every id in the store."""
    assert (result.non_2xx, result.errors) == (0, 0), (
        f"{result.non_2xx} non-2xx, errors {result.summary()['error_classes']}")
    assert result.accepted == posts
    ids = set(result.ids)
    assert len(ids) == posts, "an id was returned twice"
    missing = ids - stored_ids(served.engine, served.table)
    assert not missing, f"{len(missing)} accepted ids are not in the store"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Callable[[str], str]]]:
    """The kind of store, and a function that returns the URL of a new, empty database."""
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("accept-sqlite")
        yield "sqlite", lambda name: f"sqlite:///{folder / name}.db"
    else:
        with embedded_postgres(tmp_path_factory.mktemp("accept-pg")) as new_database:
            yield "postgresql", new_database


@pytest.fixture(scope="module")
def servers(store: tuple[str, Callable[[str], str]],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    """Both servers, each on a new database of the store, warmed up, by name."""
    kind, new_database = store
    folder = tmp_path_factory.mktemp(f"accept-{kind}-servers")
    with contextlib.ExitStack() as stack:
        served: dict[str, Served] = {}
        for name in ("bare", "qhybrid"):
            url = new_database(f"{name}_state")
            if name == "qhybrid":
                env = qhybrid_env(folder / "records", url)
                app, engine, table = QHYBRID_APP, prepare_job_store(env).engine, JOBS
            else:
                env = bare_env(url)
                app, engine, table = BARE_APP, open_bare_engine(url), ACCEPTED
            stack.callback(engine.dispose)  # after the server stops, before PostgreSQL does
            process = ServerProcess(app, env, folder / f"{name}.log")
            stack.callback(process.stop)
            process.launch()  # both start at once
            served[name] = Served(name, kind, process, engine, table)
        for name, server in served.items():
            server.process.wait_ready()
            for case_server, body in CASES:
                if case_server == name:
                    check(server, run_load(server.jobs_url, BODIES[body], posts=WARMUP_POSTS,
                                           concurrency=32), WARMUP_POSTS)
        yield served


@pytest.mark.parametrize(("server", "body"), CASES, ids=[f"{s}-{b}" for s, b in CASES])
@pytest.mark.parametrize("concurrency", [8, 32], ids=lambda c: f"c{c}")
def test_accept(benchmark, servers: dict[str, Served], server: str, body: str,
                concurrency: int):
    served = servers[server]
    benchmark.group = f"accept-{served.store}"
    cpu = served.process.cpu_seconds()
    result = benchmark.pedantic(run_load, args=(served.jobs_url, BODIES[body]),
                                kwargs={"posts": POSTS, "concurrency": concurrency},
                                rounds=1, iterations=1)
    server_cpu = served.process.cpu_seconds() - cpu
    check(served, result, POSTS)
    benchmark.extra_info |= {
        "server": server, "store": served.store, "body": body, **result.summary(),
        "server_cpu_seconds": round(server_cpu, 3),
        "server_cpu_ms_per_accept": round(server_cpu / POSTS * 1000, 3),
        "client_cpu_ms_per_post": round(result.client_cpu_seconds / POSTS * 1000, 3)}
