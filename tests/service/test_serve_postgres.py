"""The service for a team: Prefect's database, the state store (with the jobs) and MLflow's
backend store on one embedded PostgreSQL, one setting each."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, text

from tests._team_servers import debian_postgres
from tests.service._harness import Service, flow_runs, running_service, submit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def postgres() -> Iterator[Callable[[str, str], str]]:
    """A throwaway PostgreSQL cluster on a unix socket: ``url(driver, database)``."""
    with debian_postgres(("qh_prefect", "qh_state", "qh_mlflow")) as url:
        yield url


@pytest.fixture(scope="module")
def pg_service(tmp_path_factory: pytest.TempPathFactory,
               postgres: Callable[[str, str], str]) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("pg-service"),
                         QHYBRID_PREFECT_DATABASE_URL=postgres("asyncpg", "qh_prefect"),
                         QHYBRID_STATE_URL=postgres("psycopg", "qh_state"),
                         QHYBRID_MLFLOW_TRACKING_URI=postgres("psycopg", "qh_mlflow")) as svc:
        yield svc


def test_a_job_runs_with_every_store_on_postgresql(pg_service: Service) -> None:
    job = submit(pg_service, {"kind": "run", "spec_path": "specs/vqe-h2.yaml", "backend": "aer",
                              "sla": "interactive", "idempotency_key": "pg-1"})
    ended = pg_service.wait_ended(job["id"])
    assert ended["status"] == "succeeded", ended

    state = create_engine(pg_service.state_url)
    with state.connect() as conn:
        assert conn.execute(text("select status from qhybrid_jobs where id = :i"),
                            {"i": job["id"]}).scalar_one() == "succeeded"
        assert conn.execute(text("select version_num from qhybrid_alembic_version")).scalar_one()
    state.dispose()
    assert job["id"] in {t.removeprefix("job:") for r in flow_runs(pg_service) for t in r.tags}

    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=pg_service.tracking_uri).get_run(ended["mlflow_run_id"])
    assert run.data.tags["qhybrid.job_id"] == job["id"]
    assert run.info.status == "FINISHED"
