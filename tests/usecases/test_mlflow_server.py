"""The real command line against a real ``mlflow server`` on loopback: ``--json`` keeps stdout
one JSON document (MLflow's "View run" lines go to stderr), every run ends (also an interrupted
promotion), inputs are MLflow datasets, and the parent run sets the gates' evidence side by
side."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow  # each test starts the command line and its Prefect server

REPO = Path(__file__).resolve().parents[2]
VQE = "specs/vqe-h2.yaml"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` on a free loopback port, with its own SQLite store and artifacts."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = (root / "server.log").open("wb")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1",
         "--port", str(port), "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
         "--artifacts-destination", str(root / "artifacts")],
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            assert server.poll() is None, (root / "server.log").read_text()
            assert time.monotonic() < deadline, "mlflow server did not answer in 180 s"
            time.sleep(0.2)  # polling the server's own readiness endpoint
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.fixture
def env(qhybrid_env: dict[str, str], mlflow_server: str, tmp_path: Path,
        request: pytest.FixtureRequest) -> dict[str, str]:
    """The command's environment: every record under tmp_path, MLflow on the server, in an
    experiment of this test's own."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("QHYBRID_", "PREFECT_"))}
    return {**base, **qhybrid_env, "QHYBRID_MLFLOW_TRACKING_URI": mlflow_server,
            "QHYBRID_MLFLOW_EXPERIMENT": request.node.name.replace("[", "-").rstrip("]"),
            "PREFECT_HOME": str(tmp_path / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}


def _qhybrid(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qhybrid_entrypoints.cli", *args], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def _runs(server: str, env: dict[str, str]) -> list:
    client = MlflowClient(tracking_uri=server)
    experiment = client.get_experiment_by_name(env["QHYBRID_MLFLOW_EXPERIMENT"])
    assert experiment is not None
    return client.search_runs([experiment.experiment_id], max_results=1000)


def _finished(server: str, env: dict[str, str], name: str) -> bool:
    """Whether a run named ``name`` has ended FINISHED on the server (False before the
    experiment exists)."""
    client = MlflowClient(tracking_uri=server)
    experiment = client.get_experiment_by_name(env["QHYBRID_MLFLOW_EXPERIMENT"])
    return experiment is not None and bool(client.search_runs(
        [experiment.experiment_id],
        filter_string=f"attributes.run_name = '{name}' and attributes.status = 'FINISHED'"))


def _assert_every_run_ended(server: str, env: dict[str, str]) -> list:
    runs = _runs(server, env)
    assert runs
    still_open = [(r.info.run_name, r.info.status) for r in runs
                  if r.info.status == "RUNNING" or r.info.end_time is None]
    assert still_open == []
    return runs


def test_run_json_is_one_document_on_a_tracking_server(mlflow_server: str,
                                                         env: dict[str, str]) -> None:
    done = _qhybrid(env, "run", VQE, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # the whole of stdout: one document, nothing else
    assert report["kind"] == "run"
    assert "View run" in done.stderr  # MLflow's link, moved off stdout, not lost
    [run] = _assert_every_run_ended(mlflow_server, env)
    assert run.info.run_id == report["mlflow_run_id"] and run.info.status == "FINISHED"
    [dataset] = run.inputs.dataset_inputs
    manifest = json.loads(Path(report["manifest"]).read_text())
    assert dataset.dataset.name == "data/h2_sto3g_0735.json"
    assert dataset.dataset.digest == manifest["data"]["data/h2_sto3g_0735.json"]["md5"]


def test_promote_json_on_a_tracking_server_ends_every_run(mlflow_server: str,
                                                          env: dict[str, str]) -> None:
    done = _qhybrid(env, "promote", VQE, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["decision"]["promote"], report["decision"]
    runs = _assert_every_run_ended(mlflow_server, env)
    assert sorted(r.info.run_name for r in runs) == [
        "gate:baseline", "gate:hardware", "gate:ideal", "gate:statistical",
        "promotion:vqe-h2@1.0.0"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    [parent] = [r for r in runs if r.info.run_id == report["mlflow_run_id"]]
    metrics, params = parent.data.metrics, parent.data.params
    for gate in report["gates"]:
        assert metrics[f"gate.{gate['gate']}.passed"] == 1.0
        for key, value in gate["metrics"].items():
            assert metrics[f"gate.{gate['gate']}.{key}"] == pytest.approx(value)
    assert metrics["promotion.score"] == pytest.approx(report["decision"]["score"])
    assert params["promotion.registered_version"] == report["registered_version"]
    for run in runs:
        assert [d.dataset.name for d in run.inputs.dataset_inputs] == [
            "data/h2_sto3g_0735.json"], run.info.run_name


def test_an_interrupted_promotion_ends_every_run_on_a_tracking_server(
        mlflow_server: str, env: dict[str, str], tmp_path: Path) -> None:
    err = tmp_path / "promote.err"
    with err.open("wb") as sink, subprocess.Popen(
            [sys.executable, "-m", "qhybrid_entrypoints.cli", "promote", VQE, "--json"],
            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=sink,
            start_new_session=True) as process:
        try:
            deadline = time.monotonic() + 300
            # The ideal gate's run has ended on the server: the statistical gate is under way.
            # (MLflow prints its "View run" link before it records the end: too early a sign.)
            while not _finished(mlflow_server, env, "gate:ideal"):
                assert process.poll() is None, err.read_text()
                assert time.monotonic() < deadline, "no ideal gate in 300 s"
                time.sleep(0.1)  # reading the server's records; Prefect offers no hook
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal
            out, _ = process.communicate(timeout=120)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err.read_text()
    assert json.loads(out)["error"]["error"] == "KeyboardInterrupt"
    runs = _assert_every_run_ended(mlflow_server, env)
    statuses = {r.info.run_name: r.info.status for r in runs}
    assert statuses["promotion:vqe-h2@1.0.0"] == "KILLED"
    assert statuses["gate:ideal"] == "FINISHED"
