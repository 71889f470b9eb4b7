"""Both flows deployed from the repository source and run by a real process worker.

A work pool, two deployments and one ``prefect worker start`` subprocess on the session's
temporary Prefect server. Parameters travel as plain JSON; every setting (MLflow store, state
store, manifests, promotion log) reaches the flow run only through the deployment's job
variables, i.e. the environment of the process the worker starts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from qhybrid.core import RunReport, load_spec

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 240  # seconds for one flow run, from scheduling to a final state
WORKER_START_TIMEOUT = 120  # seconds from the worker's start to its first heartbeat
MARKER = "DEPLOYMENT_TEST_WORKER"  # tags every process the fixture starts


@dataclass(frozen=True)
class Deployed:
    """What the module's tests share: deployment names, the worker and the flows' stores."""

    run: str
    promote: str
    pool: str
    tracking_uri: str
    artifact_root: Path
    worker: subprocess.Popen[bytes]
    worker_log: Path

    def tracker(self):
        from registry import Tracker

        return Tracker(self.tracking_uri, self.artifact_root, "qhybrid")

    def log_tail(self, chars: int = 4000) -> str:
        return self.worker_log.read_text(errors="replace")[-chars:]


def _tagged_processes(token: str) -> list[psutil.Process]:
    """Every live process whose environment carries ``MARKER=token`` (the worker and the
    flow-run processes it started, whichever session or parent they ended up in)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARKER) == token:
                found.append(proc)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def _stop_worker(worker: subprocess.Popen[bytes], token: str) -> None:
    """SIGTERM (graceful), SIGKILL of its process group on timeout, then reap the rest."""
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
    leftovers = _tagged_processes(token)
    _, alive = psutil.wait_procs(leftovers, timeout=10)
    for proc in alive:
        proc.kill()
    psutil.wait_procs(alive, timeout=10)


def _wait_for_worker(worker: subprocess.Popen[bytes], pool: str, log: Path) -> None:
    """Until the worker has sent its first heartbeat to the pool.

    Only then has the child process certainly replaced itself with ``prefect worker``: between
    fork and exec, its environment is still this process's, without MARKER.
    """
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + WORKER_START_TIMEOUT
    with get_client(sync_client=True) as client:
        while not client.read_workers_for_work_pool(pool):
            if worker.poll() is not None:
                pytest.fail(f"the worker exited ({worker.returncode}):\n{log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no heartbeat from the worker in {WORKER_START_TIMEOUT} s:\n"
                            f"{log.read_text()[-4000:]}")
            time.sleep(0.2)  # polling the server: it pushes no event for a worker's start


@pytest.fixture(scope="module")
def deployed(prefect_server, repo: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL

    from flows import promote_experiment, run_experiment

    tmp = tmp_path_factory.mktemp("deployment")
    api_url = PREFECT_API_URL.value()
    assert api_url, "prefect_server must set PREFECT_API_URL"
    pool = f"qhybrid-test-{uuid.uuid4().hex[:8]}"
    token = uuid.uuid4().hex
    tracking_uri = f"sqlite:///{tmp / 'mlflow.db'}"
    artifact_root = tmp / "artifacts"

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))

    # Read by the flow run (the worker adds these to its own environment for each run).
    job_env = {
        "QHYBRID_PROJECT_ROOT": str(repo),
        "QHYBRID_MLFLOW_TRACKING_URI": tracking_uri,
        "QHYBRID_MLFLOW_ARTIFACT_ROOT": str(artifact_root),
        "QHYBRID_PROMOTION_LOG": str(tmp / "promotion-log.jsonl"),
        "QHYBRID_MANIFESTS_DIR": str(tmp / "manifests"),
        "QHYBRID_STATE_URL": f"sqlite:///{tmp / 'state.db'}",
        # The flows persist their RunReport (persist_result=True) so that a caller of the
        # deployment can read it back; here, under the test's folder.
        "PREFECT_LOCAL_STORAGE_PATH": str(tmp / "prefect-results"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DVC_NO_ANALYTICS": "1",
        "DO_NOT_TRACK": "1",
    }
    names = {}
    for fn, entrypoint in ((run_experiment, "flows.run.run_experiment"),
                           (promote_experiment, "flows.promotion.promote_experiment")):
        fn.from_source(source=str(repo), entrypoint=entrypoint).deploy(
            name="test", work_pool_name=pool, build=False, push=False, print_next_steps=False,
            ignore_warnings=True, job_variables={"env": job_env, "working_dir": str(repo)})
        names[fn.name] = f"{fn.name}/test"

    # The worker's own environment: nothing inherited from QHYBRID_*/PREFECT_* of this shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QHYBRID_", "PREFECT_"))}
    env |= {
        "PREFECT_API_URL": api_url,  # the harness sets it in this process only
        "PREFECT_HOME": str(tmp / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DVC_NO_ANALYTICS": "1",
        MARKER: token,
    }
    log = tmp / "worker.log"
    prefect_bin = str(Path(sys.executable).parent / "prefect")
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [prefect_bin, "worker", "start", "--pool", pool, "--type", "process",
             "--install-policy", "never", "--no-create-pool-if-not-found"],
            env=env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_worker(worker, pool, log)
        # The leftover check below finds processes by MARKER: it must see the worker itself.
        assert worker.pid in {p.pid for p in _tagged_processes(token)}
        yield Deployed(run=names["run-experiment"], promote=names["promote-experiment"],
                       pool=pool, tracking_uri=tracking_uri, artifact_root=artifact_root,
                       worker=worker, worker_log=log)
    finally:
        _stop_worker(worker, token)  # before the session's server stops
    assert worker.poll() is not None, "the worker is still running"
    assert _tagged_processes(token) == [], "processes started by the worker outlived it"


def _run(deployed: Deployed, name: str, parameters: dict[str, Any]):
    """Run ``name`` through the worker and wait for a final state."""
    from prefect.deployments import run_deployment

    flow_run = run_deployment(name, parameters=parameters, timeout=RUN_TIMEOUT, poll_interval=1)
    assert flow_run.state is not None and flow_run.state.is_final(), (
        f"{name} did not finish within {RUN_TIMEOUT}s: {flow_run.state}\n"
        f"worker log:\n{deployed.log_tail()}")
    return flow_run


def _parent_runs(deployed: Deployed, flow_run_id: object) -> list:
    """The MLflow runs tagged with one Prefect flow run, in any experiment."""
    client = deployed.tracker().client
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    return client.search_runs(
        experiments, filter_string=f"tags.`qhybrid.prefect_flow_run_id` = '{flow_run_id}'")


def _flow_run_ids(name: str) -> set[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(name)
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])))
    return {str(r.id) for r in runs}


@pytest.fixture(scope="module")
def spec_json(repo: Path) -> dict[str, Any]:
    return load_spec(repo / "specs" / "vqe-h2.yaml").model_dump(mode="json")


def test_run_deployment_reads_its_settings_from_the_worker(deployed: Deployed, spec_json) -> None:
    flow_run = _run(deployed, deployed.run, {"spec": spec_json, "options": {"backend": "aer"}})
    assert flow_run.state.is_completed(), (flow_run.state, deployed.log_tail())

    report = RunReport.model_validate(flow_run.state.result())
    assert report.kind == "run" and report.backend == "aer"
    assert report.experiment == spec_json["name"]
    assert report.metrics["energy_error"] < 1e-6
    assert report.prefect_flow_run_id == str(flow_run.id)
    # The run is in the store only the deployment's job variables name.
    assert report.mlflow_run_id is not None
    assert deployed.tracker().get_run(report.mlflow_run_id).status == "FINISHED"
    assert [r.info.run_id for r in _parent_runs(deployed, flow_run.id)] == [report.mlflow_run_id]
    assert report.manifest is not None
    assert Path(report.manifest).is_relative_to(deployed.artifact_root.parent / "manifests")
    assert Path(report.manifest).is_file()


def test_promotion_deployment_from_json_parameters(deployed: Deployed, spec_json) -> None:
    tracker = deployed.tracker()
    before = dict(tracker.registered()).get(spec_json["name"], [])

    flow_run = _run(deployed, deployed.promote, {"spec": spec_json})
    assert flow_run.state.is_completed(), (flow_run.state, deployed.log_tail())

    report = RunReport.model_validate(flow_run.state.result())
    assert report.kind == "promotion"
    assert [g.gate for g in report.gates] == ["ideal", "statistical", "hardware", "baseline"]
    assert all(g.passed for g in report.gates), [g.reasons for g in report.gates]
    assert report.decision is not None and report.decision.promote is True
    assert report.registered_version == str(len(before) + 1)
    assert report.mlflow_run_id is not None
    assert tracker.get_run(report.mlflow_run_id).status == "FINISHED"
    after = dict(tracker.registered())[spec_json["name"]]
    assert report.registered_version in [v.version for v in after]


def test_parameters_outside_the_schema_create_no_flow_run(deployed: Deployed, spec_json) -> None:
    from prefect.deployments import run_deployment
    from prefect.exceptions import PrefectHTTPStatusError

    bad_spec = spec_json | {"surprise": 1}
    cases = [
        (deployed.run, {"spec": spec_json, "options": {"backend": "aer", "surprise": 1}}),
        (deployed.promote, {"spec": bad_spec}),
    ]
    for name, parameters in cases:
        existing = _flow_run_ids(name)
        with pytest.raises(PrefectHTTPStatusError, match="409") as excinfo:
            run_deployment(name, parameters=parameters, timeout=0)
        assert "surprise" in excinfo.value.response.text
        assert _flow_run_ids(name) == existing


def test_parameters_pydantic_refuses_fail_before_any_record(deployed: Deployed, spec_json) -> None:
    flow_run = _run(deployed, deployed.run,
                    {"spec": spec_json, "options": {"backend": "nosuch:device"}})
    assert flow_run.state.is_failed(), (flow_run.state, deployed.log_tail())
    message = flow_run.state.message or ""
    assert "Validation of flow parameters failed" in message and "nosuch:device" in message, message
    assert _parent_runs(deployed, flow_run.id) == []
