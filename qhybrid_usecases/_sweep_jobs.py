"""Sweep jobs: where a sweep job's Parquet file goes, its result, and the file's download.

A sweep job's flow writes its Parquet file under ``Settings.job_sweeps_path``, named by the
job's id, then :func:`finish_sweep_job` records the sweep's report as the job's result with a
reference to the file (size and SHA-256). The file can be far larger than any result
document, so it is never embedded: the API streams it from :func:`sweep_job_parquet`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from qhybrid.core import JobNotFoundError, JobRecord, ResultData, Settings, SweepReport
from qhybrid_control import JobStore
from qhybrid_usecases._jobs import JobWork, job_result, source_of

PARQUET_MEDIA_TYPE: Final = "application/vnd.apache.parquet"
_READ_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ParquetDownload:
    """A sweep job's Parquet file, as the API serves it."""

    path: Path
    data: ResultData


def sweep_job_output(settings: Settings, job_id: str) -> Path:
    """Where the sweep of job ``job_id`` writes its Parquet file."""
    return settings.job_sweeps_path / f"{job_id}.parquet"


def parquet_href(job_id: str) -> str:
    """The URL path a sweep job's Parquet file is downloaded from."""
    return f"/v1/jobs/{job_id}/result/parquet"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(_READ_BYTES):
            digest.update(block)
    return digest.hexdigest()


def finish_sweep_job(jobs: JobStore, work: JobWork, report: SweepReport) -> JobRecord:
    """Record a sweep's report as its job's result, with a reference to the Parquet file (its
    size and SHA-256, which the download's ETag repeats); the job has succeeded."""
    jobs.transition(work.job_id, "post-processing", sub_status="hashing the Parquet file")
    path = Path(report.output)
    parquet = ResultData(href=parquet_href(work.job_id), media_type=PARQUET_MEDIA_TYPE,
                         bytes=path.stat().st_size, sha256=_sha256(path))
    result: dict[str, Any] = {
        "job_id": work.job_id, "kind": work.kind, "source": source_of(report.backend),
        "backend": report.backend, "parameter_names": list(report.parameters),
        "sweep": report.model_dump(mode="json"), "parquet": parquet.model_dump(mode="json"),
    }
    metrics = {"backend": report.backend, "points": report.points, "chunks": report.chunks}
    return jobs.transition(work.job_id, "succeeded", result=result,
                           mlflow_run_id=report.mlflow_run_id, metrics=metrics)


def sweep_job_parquet(jobs: JobStore, job_id: str, *, client: str) -> ParquetDownload:
    """The Parquet file of a succeeded sweep job, for the client that submitted the job.

    Another client's job is answered as if it did not exist (:func:`owned_job`).

    Raises:
        JobNotFoundError: No such job for this client, not a succeeded sweep, or its file is
            no longer the one recorded (moved, removed or rewritten since).
    """
    result = job_result(jobs, job_id, client=client)
    if result.parquet is None:
        raise JobNotFoundError(f"job {job_id} is a {result.kind} job: only a sweep has a "
                               "Parquet file", field="id")
    path = Path(result.sweep.output if result.sweep is not None else "")
    try:
        size = path.stat().st_size
    except OSError:
        size = -1
    if size != result.parquet.bytes:
        # A cheap check on every download; the ETag is the SHA-256 recorded when it was written.
        raise JobNotFoundError(f"the Parquet file of job {job_id} is no longer where the sweep "
                               "wrote it, or has changed since", field="id")
    return ParquetDownload(path=path, data=result.parquet)
