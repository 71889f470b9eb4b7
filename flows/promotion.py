"""The gated promotion: ideal -> statistical -> hardware -> baseline -> decide -> apply."""

from __future__ import annotations

from prefect import State, flow
from prefect.runtime import flow_run

from qhybrid.core import ExperimentSpec, RunOptions, RunReport
from qhybrid_usecases import RunHandle
from tasks import (
    apply_promotion,
    baseline_gate,
    decide_promotion,
    finish_run,
    flow_services,
    guard_records,
    hardware_gate,
    ideal_gate,
    open_records,
    record_evidence,
    statistical_gate,
)
from tasks.records import as_data, refused, run_tags, tag_flow_run


@flow(name="promote-experiment", flow_run_name="promote {spec.name} {spec.version}",
      log_prints=False, persist_result=True)
def promote_experiment(
    spec: ExperimentSpec, options: RunOptions | None = None
) -> RunReport | State:
    """Run every gate for ``spec`` and promote it in the MLflow registry if all pass.

    Settings and secrets are read where the flow runs (``QHYBRID_*``), never passed in. A
    refused promotion ends in a COMPLETED state named ``Refused``, its report as the result.
    """
    options = options or RunOptions()
    tag_flow_run(flow_run.get_id(), run_tags(spec, options, "promote"))
    services = flow_services(sla=options.sla)  # a service job: its class's retries
    flow_run_id = flow_run.get_id()

    # as_data(): Prefect walks a task's arguments for upstream results (the UI's dependency
    # arrows), into every field of the services (settings, workloads, the execution log) and
    # every entry of a trial's counts; those are passed as data. The decision takes the
    # gates' verdicts, light to walk, which keep its arrows from the four gates.
    shared = as_data(services)

    def work(run: RunHandle) -> RunReport | State:
        ideal = ideal_gate(run, shared)
        statistical = statistical_gate(run, shared)
        trial = as_data(ideal.trial)
        hardware = hardware_gate(run, shared, trial)
        baseline = baseline_gate(run, shared, as_data(hardware.trial))
        steps = [ideal, statistical, hardware, baseline]
        decision = decide_promotion(run, shared, [step.gate for step in steps],
                                    as_data(hardware.trial))
        recorded = record_evidence(run, shared, trial, as_data(steps), decision)
        version = apply_promotion(run, shared, decision)
        report = finish_run(run, shared, as_data(recorded), trial, as_data(steps), decision,
                            version)
        return report if decision.promote else refused(report)

    # The MLflow run opened; then, cancelled, failed, timed out or stopped: leases released,
    # the MLflow run ended.
    return guard_records(
        services, lambda: open_records(spec, options, "promotion", flow_run_id, shared), work,
        flow_run_id=flow_run_id)
