"""One run of one experiment on one backend, tracked, without gates."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Cancelled

from qhybrid.core import ExperimentSpec, RunCancelledError, RunReport, Settings
from tasks import close_records, open_records, run_on_backend
from tasks._records import fail_session


@flow(name="run-experiment", log_prints=False, validate_parameters=False)
def run_experiment(
    spec: ExperimentSpec, settings: Settings, backend: str, allow_unpinned_data: bool = False
) -> RunReport:
    """Optimise and sample ``spec`` on ``backend``; record the run in MLflow with a manifest."""
    run_id = flow_run.get_id()
    session = open_records(spec, settings, "run", allow_unpinned_data, run_id)
    try:
        execution = run_on_backend(session, backend)
        return close_records(session, "run", backend, execution, [], [], None, run_id)
    except RunCancelledError as exc:
        fail_session(session, exc)  # leases released: nothing left running or billed
        return Cancelled(message=exc.message)
    except BaseException as exc:  # failure, timeout, SIGTERM: release leases, then re-raise
        fail_session(session, exc)
        raise
