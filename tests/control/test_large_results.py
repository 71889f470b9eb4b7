"""A result too large for its job row is stored by reference: the row keeps a summary that
names the full document, which is stored with the same transition or not at all."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest

import qhybrid_usecases as usecases
from qhybrid.core import JobNotFoundError, JobResult, Settings
from qhybrid_control import JobStore, NewJob
from tests.control.test_job_store import Clock

LIMIT = 1024


@pytest.fixture
def jobs(settings: Settings) -> JobStore:
    return JobStore(usecases.job_store(settings).engine, clock=Clock(),
                    inline_max_bytes=LIMIT)


def _accepted(jobs: JobStore) -> str:
    job, _ = jobs.accept(NewJob(
        id=str(uuid.uuid4()), client="team", kind="evaluate", sla="batch-research",
        experiment="maxcut", family=None, backend="aer", idempotency_key=None,
        request={"request": {}}, request_sha256="0" * 64, trace_id=uuid.uuid4().hex,
        callback_url=None))
    return job.id


def _result(job_id: str, sets: int) -> dict[str, object]:
    return {"job_id": job_id, "kind": "evaluate", "source": "simulator", "backend": "aer",
            "parameter_names": ["t0"], "values": [0.125 * i for i in range(sets)]}


def test_a_small_result_stays_in_its_job_row(jobs: JobStore) -> None:
    job_id = _accepted(jobs)
    jobs.transition(job_id, "succeeded", result=_result(job_id, 3))

    assert usecases.job_result(jobs, job_id, client="team").values == (0.0, 0.125, 0.25)
    assert usecases.job_result(jobs, job_id, client="team").data is None
    with pytest.raises(JobNotFoundError):
        usecases.job_result_data(jobs, job_id, client="team")


def test_a_large_result_is_stored_by_reference(jobs: JobStore) -> None:
    job_id = _accepted(jobs)
    full = _result(job_id, 500)
    jobs.transition(job_id, "succeeded", result=full)

    summary = usecases.job_result(jobs, job_id, client="team")
    body, sha256 = usecases.job_result_data(jobs, job_id, client="team")

    assert summary.values is None and summary.backend == "aer"
    assert summary.data is not None
    assert summary.data.href == f"/v1/jobs/{job_id}/result/data"
    assert summary.data.bytes == len(body.encode()) > LIMIT
    assert summary.data.sha256 == sha256 == hashlib.sha256(body.encode()).hexdigest()
    whole = JobResult.model_validate_json(body)
    assert whole.values == tuple(full["values"])  # type: ignore[arg-type]
    assert len(json.dumps(jobs.result_of(job_id))) < LIMIT


def test_an_ended_job_keeps_its_result_and_a_cancelled_one_stores_none(
        jobs: JobStore) -> None:
    ended = _accepted(jobs)
    jobs.transition(ended, "succeeded", result=_result(ended, 500))
    first = usecases.job_result_data(jobs, ended, client="team")
    jobs.transition(ended, "succeeded", result=_result(ended, 900))  # ended: no change
    cancelled = _accepted(jobs)
    jobs.request_cancel(cancelled)
    jobs.transition(cancelled, "succeeded", result=_result(cancelled, 500))

    assert usecases.job_result_data(jobs, ended, client="team") == first
    assert jobs.get(cancelled).status == "cancelled"
    assert jobs.result_data(cancelled) is None


def test_a_result_and_a_cancellation_belong_to_the_client_that_submitted_the_job(
        jobs: JobStore) -> None:
    ended, queued = _accepted(jobs), _accepted(jobs)
    jobs.transition(ended, "succeeded", result=_result(ended, 500))

    for read in (usecases.job_result, usecases.job_result_data, usecases.cancel_job):
        with pytest.raises(JobNotFoundError) as info:
            read(jobs, ended if read is not usecases.cancel_job else queued, client="other")
        assert info.value.field == "id" and "client 'other'" in info.value.message
    assert jobs.get(queued).status == "queued"  # nothing cancelled for a stranger
    usecases.cancel_job(jobs, queued, client="team")
    assert jobs.get(queued).status == "cancelled"
