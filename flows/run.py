"""One run of one experiment on one backend, tracked, without gates."""

from __future__ import annotations

from prefect import State, flow
from prefect.runtime import flow_run

from qhybrid.core import ExperimentSpec, RunOptions, RunReport
from qhybrid_usecases import RunHandle
from tasks import (
    finish_run,
    flow_services,
    guard_records,
    open_records,
    record_evidence,
    run_on_backend,
)
from tasks.records import as_data, run_tags, tag_flow_run


@flow(name="run-experiment", flow_run_name="run {spec.name} {spec.version}", log_prints=False,
      persist_result=True)
def run_experiment(spec: ExperimentSpec, options: RunOptions | None = None) -> RunReport | State:
    """Optimise and sample ``spec`` on ``options.backend`` (default: the spec's ideal backend);
    record the run in MLflow with a manifest.

    Settings and secrets are read where the flow runs (``QHYBRID_*``), never passed in.
    """
    options = options or RunOptions()
    tag_flow_run(flow_run.get_id(), run_tags(spec, options, "run"))
    services = flow_services(sla=options.sla)  # a service job: its class's retries
    flow_run_id = flow_run.get_id()

    # as_data(): the services, trials, steps and the recorded evidence are data; Prefect
    # need not walk them for upstream results (flows/promotion.py).
    shared = as_data(services)

    def work(run: RunHandle) -> RunReport:
        outcome = run_on_backend(run, shared)
        trial, steps = as_data(outcome.trial), as_data([outcome])
        recorded = record_evidence(run, shared, trial, steps)
        return finish_run(run, shared, as_data(recorded), trial, steps)

    # The MLflow run opened; then, cancelled, failed, timed out or stopped: leases released,
    # the MLflow run ended.
    return guard_records(
        services, lambda: open_records(spec, options, "run", flow_run_id, shared), work,
        flow_run_id=flow_run_id)
