"""No accepted job is lost: a 202 from ``POST /v1/jobs`` means the job is in the store.

The job API runs as a real uvicorn process (the accept benchmarks' harness,
``benchmarks/_servers.py`` and ``benchmarks/_load.py``). Jobs are POSTed at concurrency 8; once
half of them have been answered, the process gets ``kill -9`` with requests still in flight.
It is restarted on the same store, and every id that was answered with 2xx before the kill
must be readable. On a SQLite file and on an embedded PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks._load import run_load
from benchmarks._servers import (
    QHYBRID_APP,
    ServerProcess,
    embedded_postgres,
    prepare_job_store,
    qhybrid_env,
)

POSTS = 200
KILL_AFTER = 100
BODY = {"kind": "run", "spec_path": "specs/vqe-h2.yaml", "backend": "aer", "sla": "interactive"}


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty state store."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
    else:
        with embedded_postgres(tmp_path / "pg") as new_database:
            yield new_database("qh_state")


@pytest.mark.slow
def test_every_accepted_job_survives_a_kill_9_and_a_restart(state_url: str,
                                                             tmp_path: Path) -> None:
    env = qhybrid_env(tmp_path / "records", state_url)
    prepare_job_store(env).engine.dispose()  # the tables; the server opens its own engine
    server = ServerProcess(QHYBRID_APP, env, tmp_path / "server.log")
    server.start()
    try:
        def kill_at_half(accepted: int) -> None:
            if accepted == KILL_AFTER:
                server.kill()

        result = run_load(f"{server.url}/v1/jobs", BODY, posts=POSTS, concurrency=8,
                          on_accepted=kill_at_half)
        assert result.non_2xx == 0
        assert result.accepted >= KILL_AFTER
        assert result.errors > 0, "the server was not killed while requests were in flight"
        assert result.accepted + result.errors == POSTS

        server.start()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            answers = {job_id: client.get(f"/v1/jobs/{job_id}") for job_id in result.ids}
        lost = sorted(job_id for job_id, answer in answers.items() if answer.status_code != 200)
        assert not lost, f"{len(lost)} of {result.accepted} accepted jobs are gone: {lost[:5]}"
        assert {answer.json()["id"] for answer in answers.values()} == set(result.ids)
        assert {answer.json()["status"] for answer in answers.values()} == {"queued"}
    finally:
        server.stop()
