"""The team topology of docs/team.md, all of it at once: Prefect's server and the state store
on PostgreSQL, a process worker per SLA queue, and an ``mlflow server`` whose backend store is
the same PostgreSQL and whose artifacts go to a shared root. Jobs of two classes run on two
workers; every record lands in the shared stores and nothing on the client's disk."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from qhybrid.core import Settings
from qhybrid_entrypoints._serve import service_folder
from tests._team_servers import debian_postgres, mlflow_server
from tests.service._harness import REPO, Service, flow_runs, running_service, submit

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
]


@dataclass(frozen=True)
class Team:
    service: Service
    tracking_uri: str
    artifacts: Path
    prefect_db: str
    client_artifacts: Path


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    folder = tmp_path_factory.mktemp("team-topology")
    shared = folder / "shared-artifacts"
    with (debian_postgres(("qh_prefect", "qh_state", "qh_mlflow")) as url,
          mlflow_server(url("psycopg", "qh_mlflow"), shared,
                        folder / "mlflow-server.log") as tracking_uri,
          running_service(folder, QHYBRID_PREFECT_DATABASE_URL=url("asyncpg", "qh_prefect"),
                          QHYBRID_STATE_URL=url("psycopg", "qh_state"),
                          QHYBRID_MLFLOW_TRACKING_URI=tracking_uri) as svc):
        yield Team(service=svc, tracking_uri=tracking_uri, artifacts=shared,
                   prefect_db=url("psycopg", "qh_prefect"),
                   client_artifacts=Path(svc.env["QHYBRID_MLFLOW_ARTIFACT_ROOT"]))


def test_jobs_of_two_classes_run_on_two_workers_with_every_record_shared(team: Team) -> None:
    svc = team.service
    classes = ("interactive", "batch-research")
    jobs = [submit(svc, {"kind": "run", "spec_path": "specs/vqe-h2.yaml", "backend": "aer",
                         "sla": sla, "idempotency_key": f"team-{sla}"}) for sla in classes]
    ended = {sla: svc.wait_ended(job["id"]) for sla, job in zip(classes, jobs, strict=True)}
    for record in ended.values():
        assert record["status"] == "succeeded", record

    # Prefect: each job's flow run went to its class's queue and was started by that class's
    # process worker (its log names the flow run); the runs are rows of Prefect's PostgreSQL.
    logs = service_folder(Settings(project_root=REPO, state_url=svc.state_url)) / "logs"
    runs = {sla: next(r for r in flow_runs(svc) if f"job:{ended[sla]['id']}" in r.tags
                      and r.work_queue_name is not None) for sla in classes}
    for sla, run in runs.items():
        assert run.work_queue_name == sla
        assert run.state_type.value == "COMPLETED"
        mine = (logs / f"worker-{sla}.log").read_text()
        assert str(run.id) in mine
        other = next(c for c in classes if c != sla)
        assert str(run.id) not in (logs / f"worker-{other}.log").read_text()
    prefect = create_engine(team.prefect_db)
    with prefect.connect() as conn:
        stored = set(conn.execute(text("select id::text from flow_run")).scalars())
    prefect.dispose()
    assert {str(r.id) for r in runs.values()} <= stored

    # The state store holds the jobs; MLflow's server holds the runs, its shared root the
    # artifacts; the client's own artifact root was never made.
    state = create_engine(svc.state_url)
    with state.connect() as conn:
        statuses: dict[str, str] = {row.id: row.status for row in conn.execute(
            text("select id, status from qhybrid_jobs"))}
    state.dispose()
    assert {statuses[r["id"]] for r in ended.values()} == {"succeeded"}

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=team.tracking_uri)
    for record in ended.values():
        run = client.get_run(record["mlflow_run_id"])
        assert run.info.status == "FINISHED"
        assert run.data.tags["qhybrid.job_id"] == record["id"]
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
        files = [p for p in team.artifacts.rglob("*")
                 if p.is_file() and record["mlflow_run_id"] in p.as_posix()]
        assert any(p.name == "manifest.json" for p in files), files
    assert not team.client_artifacts.exists()
