"""The team set-up of docs/team.md on real servers: ``mlflow server`` on loopback with its backend
store on an embedded PostgreSQL (pgserver) and proxied artifacts on a shared path, and the state
store in the same PostgreSQL. A promotion's artifacts, model, log and manifest end up where
another machine reads them; nothing lands on the client's disk."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow
import pytest
from sqlalchemy import create_engine, text

import qhybrid_usecases as usecases
from benchmarks._servers import embedded_postgres
from qhybrid.core import Settings
from registry import Tracker
from tests._team_servers import mlflow_server
from tests.registry.conftest import promote

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
    pytest.mark.filterwarnings("ignore:Operation with range is deprecated"),
]


@dataclass(frozen=True)
class Team:
    """The shared services: MLflow's URL, the state store's URL, the shared artifact path."""

    tracking_uri: str
    state_url: str
    artifacts: Path


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    folder = tmp_path_factory.mktemp("team")
    # Not under pytest's tmp folders, which are private to this user: as root, pgserver runs
    # PostgreSQL as a user of its own.
    pg_folder = Path(tempfile.mkdtemp(prefix="qhybrid-team-pg-"))
    pg_folder.chmod(0o755)
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, pg_folder, ignore_errors=True)
        new_database = stack.enter_context(embedded_postgres(pg_folder / "pg"))
        backend_store, state_url = new_database("qh_mlflow"), new_database("qh_state")
        shared = folder / "shared-artifacts"
        url = stack.enter_context(mlflow_server(backend_store, shared,
                                                folder / "mlflow-server.log"))
        yield Team(tracking_uri=url, state_url=state_url, artifacts=shared)


def test_a_promotion_on_the_team_servers(team: Team, repo: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QHYBRID_MLFLOW_TRACKING_URI", team.tracking_uri)
    monkeypatch.setenv("QHYBRID_STATE_URL", team.state_url)
    settings = Settings()
    done = promote(settings, repo / "specs" / "vqe-h2.yaml")
    assert done.version == "1"

    # Artifacts went through the server to the shared path; nothing under the client's root.
    tracker = Tracker.for_settings(settings)
    experiment = tracker.client.get_experiment(tracker.experiment_id)
    assert experiment.artifact_location.startswith("mlflow-artifacts:/")
    run = tracker.get_run(done.mlflow_run_id)
    assert run.artifact_uri is not None and run.artifact_uri.startswith("mlflow-artifacts:/")
    assert not settings.artifact_root.exists()
    stored = {p.relative_to(team.artifacts).as_posix() for p in team.artifacts.rglob("*")
              if done.mlflow_run_id in p.as_posix() and p.is_file()}
    for name in ("experiment/manifest.json", "model/MLmodel", "promotion.json"):
        assert any(s.endswith(f"{done.mlflow_run_id}/artifacts/{name}") for s in stored), name

    # The hint a person follows is the server's page of the run.
    hint = tracker.ui_hint(done.mlflow_run_id)
    assert hint == (f"{team.tracking_uri}/#/experiments/{tracker.experiment_id}/runs/"
                    f"{done.mlflow_run_id}")
    assert httpx.get(hint.split("#")[0], timeout=10).status_code == 200

    # Another machine: no local mirrors, the same servers.
    settings.promotion_log_path.unlink()
    shutil.rmtree(settings.manifests_path)
    report = usecases.show(settings, "vqe-h2@champion")
    assert report.manifest is not None and report.manifest.mlflow_run_id == done.mlflow_run_id
    assert [p.registered_version for p in report.promotions] == ["1"]
    engine = create_engine(team.state_url)
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from qhybrid_manifests")).scalar_one() == 1
        assert conn.execute(text("select experiment from qhybrid_promotions")
                            ).scalars().all() == ["vqe-h2"]
    engine.dispose()

    monkeypatch.setenv("MLFLOW_TRACKING_URI", team.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/vqe-h2@champion")
    out = model.predict(model.input_example)
    assert (out["source"][0], out["backend"][0]) == ("simulator", "aer")
