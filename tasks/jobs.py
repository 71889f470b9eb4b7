"""Prefect tasks of the job service: start a batch of jobs, evaluate, record how each ended."""

from __future__ import annotations

import time
from collections.abc import Sequence

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

import qhybrid_usecases as usecases
from qhybrid.core import RunReport, SweepReport
from qhybrid_control import JobStore, policies_from
from qhybrid_usecases import JobWork, Services
from tasks.settings import read_settings


@task(name="begin-jobs", cache_policy=NO_CACHE)
def begin_jobs(jobs: JobStore, job_ids: Sequence[str], flow_run_id: str | None) -> list[JobWork]:
    """Move each job to ``validating``; skip those cancelled or already ended."""
    started = (usecases.begin_job(jobs, job_id, flow_run_id) for job_id in job_ids)
    return [work for work in started if work is not None]


@task(name="evaluate-jobs", cache_policy=NO_CACHE)
def evaluate_jobs(services: Services, jobs: JobStore, works: Sequence[JobWork],
                  flow_run_id: str | None) -> None:
    """Evaluate promoted experiments: one PUB per group of jobs that can share it."""
    usecases.evaluate_jobs(services, jobs, works, flow_run_id=flow_run_id,
                           policies=policies_from(services.settings.sla_policies))


@task(name="claim-more-jobs", cache_policy=NO_CACHE)
def claim_more_jobs(jobs: JobStore, work: JobWork, flow_run_id: str) -> list[str]:
    """Evaluate jobs of the same class queued meanwhile, for this (warm) flow run."""
    return usecases.claim_more(jobs, work, policies_from(read_settings().sla_policies),
                               flow_run_id=flow_run_id, now=time.time())


def finish_job(jobs: JobStore, work: JobWork, report: RunReport) -> None:
    """Record a run's or promotion's report as its job's result."""
    usecases.finish_job(jobs, work, report)


def finish_sweep_job(jobs: JobStore, work: JobWork, report: SweepReport) -> None:
    """Record a sweep's report and its Parquet file as its job's result."""
    usecases.finish_sweep_job(jobs, work, report)


def fail_job(jobs: JobStore, job_id: str, exc: BaseException) -> None:
    """Record why a job failed (a plain function: it runs while the flow is failing)."""
    usecases.fail_job(jobs, job_id, exc)


def publish_jobs(jobs: JobStore, job_ids: Sequence[str]) -> None:
    """A table artifact of the batch: each job's status, trace id and MLflow run."""
    rows = []
    for job_id in job_ids:
        record = usecases.job_status(jobs, job_id)
        rows.append({"job": record.id, "kind": record.kind, "status": record.status,
                     "experiment": record.experiment or "", "trace id": record.trace_id,
                     "MLflow run": record.mlflow_run_id or "",
                     "error": record.error.message if record.error else ""})
    create_table_artifact(table=rows, key="served-jobs", description=(
        f"{len(rows)} job{'s' if len(rows) != 1 else ''} served by this flow run"))
