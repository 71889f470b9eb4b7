"""A parameter sweep of one experiment on one backend, streamed to Parquet and tracked."""

from __future__ import annotations

from prefect import State, flow
from prefect.runtime import flow_run

from qhybrid.core import ExperimentSpec, RunOptions, SweepReport
from qhybrid_usecases import RunHandle
from tasks import flow_services, guard_records, open_records, sweep_on_cluster
from tasks.records import as_data, tag_flow_run
from tasks.sweep import finish_sweep, sweep_points, sweep_tags


@flow(name="sweep-experiment", flow_run_name="sweep {spec.name} {spec.version}",
      log_prints=False, persist_result=True)
def sweep_experiment(spec: ExperimentSpec, options: RunOptions | None = None,
                     output: str | None = None) -> SweepReport | State:
    """Evaluate every named observable of ``spec`` at every point of its ``sweep`` section on
    ``options.backend`` (default: the spec's ideal backend), write them to ``output`` (a
    Parquet file; default ``sweeps/``), and record the sweep in MLflow.

    Settings and secrets are read where the flow runs (``QHYBRID_*``), never passed in;
    among them where the chunks are evaluated (``QHYBRID_SWEEP_RUNNER``: here, or on a Dask
    cluster).
    """
    options = options or RunOptions()
    tag_flow_run(flow_run.get_id(), sweep_tags(spec, options))
    services = flow_services(sla=options.sla)
    flow_run_id = flow_run.get_id()

    shared = as_data(services)  # Prefect need not walk the services (flows/promotion.py)

    def work(run: RunHandle) -> SweepReport:
        # QHYBRID_SWEEP_RUNNER=dask: the chunks on a Dask cluster, one task run each.
        outcome = (sweep_on_cluster(run, services, output)
                   if services.settings.sweep_runner == "dask"
                   else sweep_points(run, shared, output))
        return finish_sweep(run, shared, outcome)

    # Opened as a run (tagged qhybrid.kind=sweep by the sweep): the same records and pins.
    # Then, cancelled, failed, timed out or stopped: leases released, the MLflow run ended.
    return guard_records(
        services, lambda: open_records(spec, options, "run", flow_run_id, shared), work,
        flow_run_id=flow_run_id)
