"""Provider job tags: the trace id of a request reaches the jobs qiskit-ibm-runtime runs, and the
ledger row of each job records the tags it was submitted with."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from backends import (
    BackendLimits,
    Pub,
    StateStore,
    Submission,
    idempotency_key,
    open_backend,
    open_executor,
    split,
)
from qhybrid.core import Settings, VqeFamily, provider_job_tags
from qhybrid.experiments import build_workload, h2_hamiltonian

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
JOB = "0b5f6c2e-9a51-4d1e-8f43-2c7d9e1a6b30"
TAGS = provider_job_tags([(TRACE, JOB)])
POINT = np.array([[0.1, 0.2, 0.3, 0.4]])


@pytest.fixture(scope="module")
def vqe():
    return build_workload(VqeFamily(), h2_hamiltonian())


def test_ibm_jobs_carry_the_tags_and_their_ledger_rows_record_them(
        tmp_path: Path, vqe, runtime_job_tags: list[list[str]]) -> None:
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    executor = open_executor("ibm:fake_manila", Settings(), transpiler_seed=1, store=store,
                             job_tags=TAGS)
    executor.sample(vqe.measured, POINT, shots=100, seed=1)
    executor.estimate(vqe.ansatz, vqe.observable, POINT, seed=1)

    assert ("qhybrid", f"trace:{TRACE}", f"job:{JOB}") == TAGS
    assert runtime_job_tags == [list(TAGS), list(TAGS)]  # the Sampler's job, the Estimator's
    jobs = executor.submitter.log.job_ids
    assert len(jobs) == 2
    for job_id in jobs:
        row = store.ledger_by_job(job_id)
        assert row is not None and row.tags == TAGS


def test_an_executor_without_tags_sends_none(vqe, runtime_job_tags: list[list[str]]) -> None:
    executor = open_executor("ibm:fake_manila", Settings(), transpiler_seed=1)
    executor.sample(vqe.measured, POINT, shots=100, seed=1)
    assert runtime_job_tags == [[]]
    row = executor.submitter.store.ledger_by_job(executor.submitter.log.job_ids[0])
    assert row is not None and row.tags == ()


def test_every_part_of_a_split_submission_keeps_the_tags(vqe) -> None:
    points = np.random.default_rng(0).uniform(-3, 3, size=(5, 4))
    submission = Submission("sample", (Pub(vqe.measured, points),), seed=1, shots=10, tags=TAGS)
    parts, _shapes = split(submission, BackendLimits(max_rows=2))
    assert len(parts) == 3 and all(part.tags == TAGS for part in parts)


def test_tags_are_not_part_of_the_key_so_other_requests_reattach(tmp_path: Path, vqe) -> None:
    submission = Submission("sample", (Pub(vqe.measured, POINT),), seed=1, shots=10)
    tagged = Submission("sample", (Pub(vqe.measured, POINT),), seed=1, shots=10, tags=TAGS)
    assert idempotency_key(submission, "aer") == idempotency_key(tagged, "aer")

    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    first = open_executor("aer", Settings(), transpiler_seed=1, store=store, job_tags=TAGS)
    first.sample(vqe.measured, POINT, shots=10, seed=1)
    other = provider_job_tags([(uuid.uuid4().hex, None)])
    again = open_executor("aer", Settings(), transpiler_seed=1, store=store, job_tags=other)
    again.sample(vqe.measured, POINT, shots=10, seed=1)
    # The same work re-attaches to the first job, which keeps the tags it was submitted with.
    assert again.submitter.log.provider_submissions == 0
    row = store.ledger_by_job(first.submitter.log.job_ids[0])
    assert row is not None and row.tags == TAGS


@pytest.mark.ibm
def test_a_job_on_real_ibm_carries_the_trace_id(vqe) -> None:
    settings = Settings()
    if settings.ibm_token is None:
        pytest.skip("QHYBRID_IBM_TOKEN is not set")
    from qiskit_ibm_runtime import QiskitRuntimeService

    service = QiskitRuntimeService(channel=settings.ibm_channel,
                                   token=settings.ibm_token.get_secret_value(),
                                   instance=settings.ibm_instance)
    device = service.least_busy(operational=True, simulator=False).name
    backend = open_backend(f"ibm:{device}", settings, transpiler_seed=1)
    trace = uuid.uuid4().hex
    submission = Submission("sample", (Pub(vqe.measured, POINT),), seed=1, shots=10,
                            tags=provider_job_tags([(trace, JOB)]))
    job_id = backend.submit(submission, tag=idempotency_key(submission, backend.fingerprint))
    try:  # found at IBM by the trace id alone, and carrying every tag
        assert [job.job_id() for job in service.jobs(job_tags=[f"trace:{trace}"])] == [job_id]
        assert {"qhybrid", f"trace:{trace}", f"job:{JOB}"} <= set(service.job(job_id).tags)
    finally:
        backend.cancel(job_id)  # no QPU time spent on a check of metadata
