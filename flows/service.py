"""The job service's flow: serve one dispatched group of jobs."""

from __future__ import annotations

import time
from typing import Any

from prefect import Flow, flow, tags
from prefect.runtime import flow_run

from flows.promotion import promote_experiment
from flows.run import run_experiment
from flows.sweep import sweep_experiment
from qhybrid.core import QhybridError, RunCancelledError, RunReport, Settings, SweepReport
from qhybrid_usecases import JobWork, job_store, sweep_job_output
from tasks import flow_services, read_settings
from tasks.jobs import (
    begin_jobs,
    claim_more_jobs,
    evaluate_jobs,
    fail_job,
    finish_job,
    finish_sweep_job,
    publish_jobs,
)

CHILD_FLOWS: dict[str, Flow[..., Any]] = {
    "run": run_experiment, "promote": promote_experiment, "sweep": sweep_experiment}
"""The flow each kind of job but ``evaluate`` runs as, a child flow run of its own."""
DRAIN_SECONDS = 30.0
"""How long a serve-jobs flow run keeps taking its class's queued evaluations."""


@flow(name="serve-jobs", log_prints=False, persist_result=False)
def serve_jobs(job_ids: list[str]) -> None:
    """Serve jobs the dispatcher grouped: evaluations share PUBs; each run, promotion or sweep
    is a child flow run of its own.

    Settings are read where the flow runs; the jobs' requests come from the job store. The
    jobs' SLA class sets the retries of their provider submissions (a child flow run learns
    the class from its run options).
    """
    settings = read_settings()
    jobs = job_store(settings)
    flow_run_id = flow_run.get_id()
    served = list(job_ids)
    works = begin_jobs(jobs, job_ids, flow_run_id)
    evaluations = [w for w in works if w.kind == "evaluate"]
    if evaluations:
        # One class per group: its retry policy for the evaluations' provider submissions.
        services = flow_services(sla=evaluations[0].sla)
        evaluate_jobs(services, jobs, evaluations, flow_run_id)
        # Warm: take the class's evaluations queued meanwhile, for a while, instead of
        # leaving each batch a process start of its own.
        deadline = time.monotonic() + DRAIN_SECONDS
        while flow_run_id and time.monotonic() < deadline:
            more = claim_more_jobs(jobs, evaluations[0], flow_run_id)
            if not more:
                break
            evaluate_jobs(services, jobs, begin_jobs(jobs, more, flow_run_id), flow_run_id)
            served += more
    for work in (w for w in works if w.kind != "evaluate"):
        child = CHILD_FLOWS[work.kind]
        try:
            jobs.transition(work.job_id, "running", sub_status=f"{child.name} flow")
            with tags(f"job:{work.job_id}", f"trace:{work.trace_id}", f"sla:{work.sla}",
                      f"kind:{work.kind}"):
                report = _child_flow(child, work, settings)
            if isinstance(report, SweepReport):
                finish_sweep_job(jobs, work, report)
            elif isinstance(report, RunReport):
                finish_job(jobs, work, report)
            else:
                raise RunCancelledError(f"{child.name} ended without a report: {report}")
        except QhybridError as exc:
            fail_job(jobs, work.job_id, exc)
        except Exception as exc:  # a bug: the job fails with its class, and so does the flow run
            fail_job(jobs, work.job_id, exc)
            raise
        # A stop of this process (SIGTERM, Ctrl-C, exit) is not the job's failure: the job stays
        # as it is, and the dispatcher runs it again once this flow run has ended.
    publish_jobs(jobs, served)


def _child_flow(child: Flow[..., Any], work: JobWork,
                settings: Settings) -> object:
    """The job's child flow run, named after the job; a sweep writes its Parquet file where
    the job's result is served from (:func:`qhybrid_usecases.sweep_job_output`).

    The child tags itself with its experiment, version and backend (tasks.records).
    """
    assert work.spec is not None and work.options is not None
    named = child.with_options(
        flow_run_name=f"{work.kind} {work.spec.name} {work.spec.version} job {work.job_id[:8]}")
    if work.kind == "sweep":
        return named(work.spec, work.options, str(sweep_job_output(settings, work.job_id)))
    return named(work.spec, work.options)
