"""The service for a team: Prefect's database, the state store (with the jobs) and MLflow's
backend store on one embedded PostgreSQL, one setting each."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.service._harness import Service, flow_runs, running_service, submit

pytestmark = pytest.mark.slow


def _debian_postgres_bin() -> Path:
    """Debian's PostgreSQL server programs: Prefect's server needs the pg_trgm extension,
    which pgserver's embedded build lacks."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.skip("Prefect's server needs PostgreSQL with pg_trgm: apt-get install "
                    "postgresql (scripts/system-deps.sh); pgserver's build lacks it")
    return found[-1].parent


def _as_postgres(argv: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@pytest.fixture(scope="module")
def postgres() -> Iterator[Callable[[str, str], str]]:
    """A throwaway PostgreSQL cluster on a unix socket: ``url(driver, database)``."""
    bin_dir = _debian_postgres_bin()
    # Not under pytest's tmp folders: those are private to this user, and the server runs as
    # the postgres user when the tests run as root.
    folder = Path(tempfile.mkdtemp(prefix="qhybrid-pg-"))
    data, socket_dir = folder / "data", folder / "socket"
    socket_dir.mkdir()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(socket_dir, "postgres")
    subprocess.run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                                 "--auth=trust"]), check=True, capture_output=True)
    subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l",
                                 str(folder / "log"), "-o", f"-k {socket_dir} -h ''",
                                 "start"]), check=True, capture_output=True)
    try:
        for database in ("qh_prefect", "qh_state", "qh_mlflow"):
            subprocess.run(_as_postgres([str(bin_dir / "createdb"), "-h", str(socket_dir),
                                         "-U", "postgres", database]),
                           check=True, capture_output=True)
        yield lambda driver, database: (f"postgresql+{driver}://postgres@/{database}"
                                        f"?host={socket_dir}")
    finally:
        subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast",
                                     "stop"]), check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


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
