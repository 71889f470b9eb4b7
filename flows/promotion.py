"""The gated promotion: ideal -> statistical -> hardware -> baseline -> decision."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Cancelled

from qhybrid.core import ExperimentSpec, RunCancelledError, RunReport, Settings
from tasks import (
    baseline_gate,
    close_records,
    decide_promotion,
    hardware_gate,
    ideal_gate,
    open_records,
    statistical_gate,
)
from tasks._records import fail_session


@flow(name="promote-experiment", log_prints=False, validate_parameters=False)
def promote_experiment(
    spec: ExperimentSpec, settings: Settings, allow_unpinned_data: bool = False
) -> RunReport:
    """Run every gate for ``spec`` and promote it in the MLflow registry if all pass."""
    run_id = flow_run.get_id()
    session = open_records(spec, settings, "promotion", allow_unpinned_data, run_id)
    try:
        ideal, ideal_execution = ideal_gate(session)
        statistical = statistical_gate(session)
        hardware, hardware_execution = hardware_gate(session, ideal_execution)
        baseline, baselines = baseline_gate(session, hardware_execution)
        gates = [ideal, statistical, hardware, baseline]
        decision = decide_promotion(session, gates, hardware_execution, baselines)
        return close_records(session, "promotion", spec.gates.ideal.backend, ideal_execution,
                             gates, baselines, decision, run_id)
    except RunCancelledError as exc:
        fail_session(session, exc)  # leases released: nothing left running or billed
        return Cancelled(message=exc.message)
    except BaseException as exc:  # failure, timeout, SIGTERM: release leases, then re-raise
        fail_session(session, exc)
        raise
