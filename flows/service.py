"""The job service's flow: serve one dispatched group of jobs."""

from __future__ import annotations

import time

from prefect import flow, tags
from prefect.runtime import flow_run

from flows.promotion import promote_experiment
from flows.run import run_experiment
from qhybrid.core import QhybridError, RunCancelledError, RunReport
from qhybrid_usecases import job_store
from tasks import flow_services, read_settings
from tasks.jobs import (
    begin_jobs,
    claim_more_jobs,
    evaluate_jobs,
    fail_job,
    finish_job,
    publish_jobs,
)

DRAIN_SECONDS = 30.0
"""How long a serve-jobs flow run keeps taking its class's queued evaluations."""


@flow(name="serve-jobs", log_prints=False, persist_result=False)
def serve_jobs(job_ids: list[str]) -> None:
    """Serve jobs the dispatcher grouped: evaluations share PUBs; each run or promotion is a
    child flow run of its own.

    Settings are read where the flow runs; the jobs' requests come from the job store. The
    jobs' SLA class sets the retries of their provider submissions (a child flow run learns
    the class from its run options).
    """
    jobs = job_store(read_settings())
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
        assert work.spec is not None and work.options is not None
        child = run_experiment if work.kind == "run" else promote_experiment
        try:
            jobs.transition(work.job_id, "running", sub_status=f"{child.name} flow")
            # The child tags itself with its experiment, version and backend (tasks.records).
            named = child.with_options(flow_run_name=(
                f"{work.kind} {work.spec.name} {work.spec.version} job {work.job_id[:8]}"))
            with tags(f"job:{work.job_id}", f"trace:{work.trace_id}", f"sla:{work.sla}",
                      f"kind:{work.kind}"):
                report = named(work.spec, work.options)
            if not isinstance(report, RunReport):
                raise RunCancelledError(f"{child.name} ended without a report: {report}")
            finish_job(jobs, work, report)
        except QhybridError as exc:
            fail_job(jobs, work.job_id, exc)
        except Exception as exc:  # a bug: the job fails with its class, and so does the flow run
            fail_job(jobs, work.job_id, exc)
            raise
        # A stop of this process (SIGTERM, Ctrl-C, exit) is not the job's failure: the job stays
        # as it is, and the dispatcher runs it again once this flow run has ended.
    publish_jobs(jobs, served)
