"""Prefect as the job service sees it: the work pool, its SLA queues, the deployments, the
hardware backends' tag concurrency limits, and the launcher the dispatcher starts flow runs
with."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import httpx

from qhybrid.core import Settings, SpecError, TransportError, load_spec, parse_backend_name
from qhybrid_control import DispatchGroup, SlaPolicy

WORK_POOL = "qhybrid"
SERVE_FLOW = "serve-jobs"
DEPLOYMENTS = {  # flow name -> (deployment name, entrypoint, default SLA class)
    "serve-jobs": ("serve-job", "flows/service.py:serve_jobs", "interactive"),
    "run-experiment": ("run-experiment", "flows/run.py:run_experiment", "near-real-time"),
    "promote-experiment": ("promote-experiment", "flows/promotion.py:promote_experiment",
                           "batch-research"),
}
_MAX_TAGGED_JOBS = 20  # tags per flow run; a larger batch lists its jobs in an artifact
SPECS_FOLDER = Path("specs")


@dataclass(frozen=True)
class BackendLimits:
    """The tag concurrency limits the service sets: ``backend:<name>`` -> submissions at once,
    and the spec files it could not read (so it could not learn their backends)."""

    limits: dict[str, int]
    unread: tuple[str, ...] = ()


def backend_limits(settings: Settings) -> BackendLimits:
    """``settings.hardware_concurrency`` for each hardware backend (``ibm:<device>``, fake
    devices included) that a spec in the project's ``specs/`` names as its hardware gate's
    target or fallback. The limit caps the ``submit-job`` task runs tagged with the backend
    (tasks/submission.py), across every flow run of the service.
    """
    if settings.hardware_concurrency == 0:
        return BackendLimits({})
    names: set[str] = set()
    unread: list[str] = []
    for path in sorted(settings.resolve(SPECS_FOLDER).glob("*.y*ml")):
        try:
            hardware = load_spec(path).gates.hardware
        except SpecError as exc:
            unread.append(f"{path.name}: {exc.message}")
            continue
        names |= {n for n in (hardware.backend, *hardware.fallback)
                  if parse_backend_name(n).kind == "ibm"}
    return BackendLimits({f"backend:{n}": settings.hardware_concurrency for n in sorted(names)},
                         tuple(unread))


def deploy_service(project_root: Path, policies: Mapping[str, SlaPolicy],
                   env: Mapping[str, str], limits: Mapping[str, int]) -> list[str]:
    """Create (or update) the work pool, one work queue per SLA class with its priority and
    concurrency limit, the tag concurrency limits and the three deployments.

    Args:
        project_root: Where the flows' source is (the deployments run it in place).
        policies: The SLA classes.
        env: Environment of every flow run (the service's QHYBRID_* settings).
        limits: Tag concurrency limits, tag -> task runs at once (see :func:`backend_limits`).

    Returns:
        The deployments' full names.
    """
    from prefect import Flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"), overwrite=True)
        for policy in policies.values():
            try:
                queue = client.read_work_queue_by_name(policy.queue, work_pool_name=WORK_POOL)
                client.update_work_queue(queue.id, priority=policy.priority,
                                         concurrency_limit=policy.concurrency)
            except ObjectNotFound:
                client.create_work_queue(policy.queue, work_pool_name=WORK_POOL,
                                         priority=policy.priority,
                                         concurrency_limit=policy.concurrency,
                                         description=f"qhybrid SLA class {policy.queue}")
        for tag, limit in limits.items():
            client.create_concurrency_limit(tag, limit)  # an upsert: a restart updates it
    names = []
    for flow_name, (deployment, entrypoint, sla) in DEPLOYMENTS.items():
        flow = Flow.from_source(source=str(project_root), entrypoint=entrypoint)
        if not isinstance(flow, Flow):  # from_source is sync here; the type admits async
            raise TypeError(f"{entrypoint} did not load as a flow")
        flow.deploy(name=deployment, work_pool_name=WORK_POOL,
                    work_queue_name=policies[sla].queue, build=False, push=False,
                    print_next_steps=False, ignore_warnings=True,
                    job_variables={"env": dict(env), "working_dir": str(project_root)},
                    tags=["qhybrid"])
        names.append(f"{flow_name}/{deployment}")
    return names


def _process_gone(infrastructure_pid: str | None) -> bool:
    """Whether a process worker's flow run process (``host:pid``) on this host has ended."""
    if not infrastructure_pid or ":" not in infrastructure_pid:
        return False
    host, _, pid = infrastructure_pid.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


class PrefectLauncher:
    """Starts ``serve-jobs`` flow runs through its deployment, one per dispatch group."""

    def launch(self, group: DispatchGroup, policy: SlaPolicy, dispatch_id: str) -> str:
        """Start the group's flow run on its class's work queue.

        The dispatch id is Prefect's idempotency key: a retried launch returns the same run.

        Raises:
            TransportError: Prefect's API did not create the flow run.
        """
        from prefect.client.schemas.objects import FlowRun
        from prefect.deployments import run_deployment
        from prefect.exceptions import PrefectHTTPStatusError

        first = group.jobs[0]
        more = f" +{len(group.jobs) - 1}" if len(group.jobs) > 1 else ""
        name = f"{group.kind} {group.experiment or ''} job {first.id[:8]}{more}".replace("  ", " ")
        tags = ["qhybrid", f"sla:{group.sla}", f"kind:{group.kind}"]
        tags += [f"job:{j.id}" for j in group.jobs[:_MAX_TAGGED_JOBS]]
        tags += sorted({f"trace:{j.trace_id}" for j in group.jobs[:_MAX_TAGGED_JOBS]})
        try:
            run = run_deployment(
                f"{SERVE_FLOW}/{DEPLOYMENTS[SERVE_FLOW][0]}",
                parameters={"job_ids": group.job_ids}, timeout=0, as_subflow=False,
                flow_run_name=name, tags=tags, idempotency_key=dispatch_id,
                work_queue_name=policy.queue)
        except (httpx.HTTPError, PrefectHTTPStatusError) as exc:
            raise TransportError(f"Prefect did not start a flow run: {exc}") from exc
        if not isinstance(run, FlowRun):  # run_deployment is sync here
            raise TypeError("run_deployment returned no flow run")
        return str(run.id)

    def states(self, flow_run_ids: Sequence[str]) -> dict[str, str | None]:
        """Each flow run's state type (None: Prefect does not know the run)."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
        from prefect.states import Crashed

        out: dict[str, str | None] = dict.fromkeys(flow_run_ids)
        if not flow_run_ids:
            return out
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[UUID(i) for i in flow_run_ids])))
            for run in runs:
                state = run.state_type.value if run.state_type else None
                if state in ("RUNNING", "CANCELLING") and _process_gone(run.infrastructure_pid):
                    # Its worker was killed with it: Prefect would show it running for ever.
                    client.set_flow_run_state(run.id, Crashed(
                        message="its process is gone (killed with its worker)"), force=True)
                    state = "CRASHED"
                out[str(run.id)] = state
        return out

    def cancel(self, flow_run_id: str) -> None:
        """Ask Prefect to cancel a flow run; its worker stops the run's process."""
        from prefect.client.orchestration import get_client
        from prefect.states import Cancelling

        with get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run_id, Cancelling(message="cancelled by its job"))


def service_health(settings: Settings) -> dict[str, dict[str, object]]:
    """Prefect's API, the MLflow UI and the workers of each SLA queue."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    out: dict[str, dict[str, object]] = {}
    api = PREFECT_API_URL.value()
    try:
        with get_client(sync_client=True) as client:
            started = time.perf_counter()
            problem = client.api_healthcheck()
            out["prefect"] = {"ok": problem is None, "url": api,
                              "seconds": round(time.perf_counter() - started, 6)}
            if problem is not None:
                out["prefect"]["error"] = str(problem)
            workers = client.read_workers_for_work_pool(WORK_POOL)
            online = [w.name for w in workers if str(w.status).upper().endswith("ONLINE")]
            out["workers"] = {"ok": bool(online), "online": sorted(online)}
    except (httpx.HTTPError, OSError, RuntimeError) as exc:
        out["prefect"] = {"ok": False, "url": api, "error": str(exc)}
        out["workers"] = {"ok": False, "error": "Prefect is unreachable"}
    mlflow = f"http://127.0.0.1:{settings.mlflow_port}/health"
    try:
        answer = httpx.get(mlflow, timeout=2.0)
        out["mlflow"] = {"ok": answer.status_code == 200, "url": mlflow.removesuffix("/health")}
    except httpx.HTTPError as exc:
        out["mlflow"] = {"ok": False, "url": mlflow.removesuffix("/health"), "error": str(exc)}
    return out
