"""Runs whose process died without closing them (SIGKILL, a lost machine): found, released,
and marked as ended, so that nothing stays open or shows as running for ever.

Each run records the host, process id and process start time that own it. A later command
on the same host looks for runs still RUNNING whose process is gone (or is another process
with the same id), releases their leases, and ends them ``KILLED``.
"""

from __future__ import annotations

import os
import socket

import psutil
from pydantic import BaseModel, ConfigDict

from qhybrid_usecases._run import release_flow_run_leases
from qhybrid_usecases._services import Services

ABANDONED_REASON = "its process ended without closing the run (killed)"


class AbandonedRun(BaseModel):
    """A run left RUNNING by a process that no longer exists, now ended."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mlflow_run_id: str
    flow_run_id: str | None
    pid: int
    leases_released: int


def _alive(pid: int, started: float) -> bool:
    if pid == os.getpid():
        return True
    try:
        return abs(psutil.Process(pid).create_time() - started) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def reap_abandoned(services: Services) -> list[AbandonedRun]:
    """End the runs on this host whose owning process is gone.

    Their leases are released (a lease that cannot be released stays open and is tagged), open
    gate runs and the parent run end ``KILLED`` with ``qhybrid.failure`` saying why.

    Returns:
        The runs ended; their Prefect flow runs are still to be marked (by the caller, which
        can reach Prefect).

    Raises:
        TrackingError: MLflow or the state store cannot be used.
    """
    tracker = services.tracker
    reaped: list[AbandonedRun] = []
    for run in tracker.running({"qhybrid.host": socket.gethostname()}):
        try:
            pid = int(run.tags["qhybrid.pid"])
            started = float(run.tags["qhybrid.process_started"])
        except (KeyError, ValueError):
            continue  # not a run qhybrid opened with an owner
        if _alive(pid, started):
            continue
        flow_run_id = run.tags.get("qhybrid.prefect_flow_run_id")
        flow_run_id = None if flow_run_id in (None, "none") else flow_run_id
        outcomes = [] if flow_run_id is None else release_flow_run_leases(
            services, flow_run_id, run.run_id, reason=ABANDONED_REASON)
        released = sum(1 for o in outcomes if o.released)
        for gate in tracker.child_runs(run.run_id):
            if gate.status == "RUNNING":
                tracker.end_run(gate.run_id, "KILLED")
        tracker.set_tags(run.run_id, {"qhybrid.failure": ABANDONED_REASON})
        tracker.end_run(run.run_id, "KILLED")
        reaped.append(AbandonedRun(mlflow_run_id=run.run_id, flow_run_id=flow_run_id, pid=pid,
                                   leases_released=released))
    return reaped
