"""The state store on SQLite and on PostgreSQL (an embedded server from pgserver)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from backends import StateStore, open_executor
from qhybrid.core import Settings, VqeFamily
from qhybrid.experiments import build_workload, h2_hamiltonian


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from platformdirs.api import RuntimeDirWarning

    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir when imported; without XDG_RUNTIME_DIR it
        # warns and falls back to /tmp, which is what a test wants.
        warnings.simplefilter("ignore", RuntimeDirWarning)
        import pgserver

        server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    try:
        yield server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        server.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    if request.param == "sqlite":
        return StateStore(f"sqlite:///{tmp_path}/state.db")
    url = request.getfixturevalue("postgres_url")
    store = StateStore(url)
    with store.engine.begin() as conn:  # one database per module: start each test empty
        for table in ("submissions", "local_jobs", "breakers", "leases"):
            conn.exec_driver_sql(f"DELETE FROM {table}")  # noqa: S608 - fixed names
    return store


def test_ledger_round_trip_and_claims(store: StateStore) -> None:
    assert store.ledger("k1") is None
    assert store.claim("k1", "aer", "sample", "run-1", owner="a", stale_after=30)
    assert not store.claim("k1", "aer", "sample", "run-2", owner="b", stale_after=30)  # a's, fresh
    assert store.claim("k1", "aer", "sample", "run-1", owner="a", stale_after=30)  # a again
    row = store.ledger("k1")
    assert (row.status, row.job_id, row.attempts) == ("submitting", None, 2)
    store.submitted("k1", "job-1")
    assert not store.claim("k1", "aer", "sample", "run-2", owner="b", stale_after=0)  # has a job
    store.finished("k1", error={"error": "ExecutionError", "message": "boom"})
    row = store.ledger("k1")
    assert (row.status, row.job_id, row.error["message"]) == ("failed", "job-1", "boom")
    assert store.ledger_counts() == {"failed": 1}
    assert store.claim("k1", "aer", "sample", "run-2", owner="b", stale_after=30)  # failed: free
    assert store.claim("k2", "aer", "sample", None, owner="dead", stale_after=30)
    assert store.claim("k2", "aer", "sample", None, owner="b", stale_after=-1)  # dead is stale


def test_local_jobs_breakers_and_leases(store: StateStore) -> None:
    store.put_local_job("j1", "aer", "tag-a", "DONE", '{"x": 1}', None)
    assert store.local_job("j1") == ("DONE", '{"x": 1}', None)
    assert store.local_job_by_tag("aer", "tag-a") == "j1"
    assert store.local_job_by_tag("aer", "b") is None
    assert not store.cancel_local_job("j1") and store.count_local_jobs("aer") == 1

    assert store.breaker("aer") == ("closed", 0, None, 0)
    store.set_breaker("aer", "open", 5, 100.0, 1, "down")
    store.set_breaker("aer", "open", 6, 100.0, 1, "down")
    assert store.breaker("aer") == ("open", 6, 100.0, 1)

    store.open_lease("run-1", "ibm:x", "session", "s-1")
    store.open_lease("run-1", "ibm:x", "job", "j-9")
    store.close_lease("j-9")
    store.close_lease("s-1", status="cancelled", note="flow cancelled")
    assert [(lease.kind, lease.status) for lease in store.leases("run-1")] == [
        ("session", "cancelled"), ("job", "closed")]
    assert store.leases(status="open") == []


def test_reattachment_through_the_store(store: StateStore) -> None:
    workload = build_workload(VqeFamily(), h2_hamiltonian())
    point = np.array([[0.1, 0.2, 0.3, 0.4]])
    first = open_executor("aer", Settings(), transpiler_seed=1, store=store)
    second = open_executor("aer", Settings(), transpiler_seed=1, store=store)
    assert first.sample(workload.measured, point, shots=64, seed=3) == second.sample(
        workload.measured, point, shots=64, seed=3)
    assert store.count_local_jobs() == 1 and second.submitter.log.reattachments == 1
