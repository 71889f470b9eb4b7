"""Evaluations behind a long hardware queue: answered from the simulator path, or handed over
to a slower class and delivered asynchronously; through the use cases, on real stores (MLflow
and the job store on SQLite) and real simulators, with the queue injected (QHYBRID_FAULTS)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import qhybrid_usecases as usecases
from qhybrid.core import EvaluateJobRequest, RunJobRequest, Settings
from qhybrid_control import JobStore, policies_from
from qhybrid_usecases import Services
from tests.registry.conftest import promote

MODEL = "vqe-h2@champion"
DEVICE = "ibm:fake_manila"  # the spec's hardware backend: a fake device, simulated locally


@pytest.fixture
def champion(settings: Settings, repo: Path) -> str:
    """vqe-h2 promoted through the use cases (about 3 s): its champion alias exists."""
    assert promote(settings, repo / "specs" / "vqe-h2.yaml").version is not None
    return MODEL


def _serve(settings: Settings, jobs: JobStore, job_id: str) -> None:
    """What a serve-jobs flow run does with one evaluation, without Prefect."""
    work = usecases.begin_job(jobs, job_id, None)
    assert work is not None
    usecases.evaluate_jobs(Services.open(settings), jobs, [work], flow_run_id=None,
                           policies=policies_from(settings.sla_policies))


def test_behind_a_long_queue_an_interactive_job_is_delivered_asynchronously(
        champion: str, configure) -> None:
    settings = configure(faults="queue=50,target=ibm:", sla_policies=json.dumps(
        {"interactive": {"on_long_queue": "asynchronous"}}))
    jobs = usecases.job_store(settings)
    job, _ = usecases.accept_job(jobs, settings, EvaluateJobRequest(
        kind="evaluate", model=champion, backend=DEVICE, sla="interactive"), client="team")

    _serve(settings, jobs, job.id)
    handed = jobs.get(job.id)
    why = (f"delivered asynchronously (batch-research): {DEVICE} has 50 jobs queued, more "
           "than this class waits behind (10)")
    assert (handed.status, handed.sla, handed.sub_status, handed.downgrade) == (
        "queued", "batch-research", why, why)
    assert [(j.id, j.sla) for j in jobs.queued()] == [(job.id, "batch-research")]
    assert handed.mlflow_run_id is None  # nothing ran on the interactive path

    # The slower class serves it later, on the device it asked for (batch-research waits).
    _serve(settings, jobs, job.id)
    done = jobs.get(job.id)
    assert (done.status, done.sla, done.downgrade) == ("succeeded", "batch-research", why)
    result = usecases.job_result(jobs, job.id, client=job.client)
    assert (result.backend, result.downgrade) == (DEVICE, why)
    assert [t.status for t in done.transitions] == [
        "queued", "validating", "waiting-backend", "queued", "validating", "waiting-backend",
        "running", "post-processing", "succeeded"]


def test_behind_a_long_queue_an_interactive_job_is_answered_from_the_simulator_path(
        champion: str, configure) -> None:
    settings = configure(faults="queue=50,target=ibm:")  # interactive: "simulator" by default
    jobs = usecases.job_store(settings)
    job, _ = usecases.accept_job(jobs, settings, EvaluateJobRequest(
        kind="evaluate", model=champion, backend=DEVICE, sla="interactive"), client="team")

    _serve(settings, jobs, job.id)
    done = jobs.get(job.id)
    why = (f"answered from the simulator path (aer): {DEVICE} has 50 jobs queued, more than "
           "this class waits behind (10)")
    assert (done.status, done.sla, done.downgrade) == ("succeeded", "interactive", why)
    result = usecases.job_result(jobs, job.id, client=job.client)
    assert (result.backend, result.source, result.downgrade) == ("aer", "simulator", why)


def test_a_job_is_served_under_its_class_and_a_run_tells_its_flow(settings: Settings) -> None:
    jobs = usecases.job_store(settings)
    run, _ = usecases.accept_job(jobs, settings, RunJobRequest(
        kind="run", spec_path="specs/vqe-h2.yaml", backend="aer", sla="interactive"),
        client="team")
    jobs.hand_over(run.id, "near-real-time", reason="moved")
    work = usecases.begin_job(jobs, run.id, "flow-run-1")
    assert work is not None and work.options is not None
    # The child flow run takes its class's retry policy from its run options.
    assert (work.sla, work.options.sla) == ("near-real-time", "near-real-time")


def test_an_evaluation_reads_the_manifest_from_the_shared_store(champion: str,
                                                                settings: Settings) -> None:
    services = Services.open(settings)
    version = services.tracker.version_by_alias("vqe-h2", "champion")
    assert version is not None and version.run_id is not None
    local = Path(services.tracker.get_run(version.run_id).tags["qhybrid.manifest"])
    local.unlink()  # as on a service host that never saw the promoting machine's files
    jobs = usecases.job_store(settings)
    job, _ = usecases.accept_job(jobs, settings, EvaluateJobRequest(
        kind="evaluate", model=champion, backend="aer", parameter_sets=[[0.1, -0.2, 0.3, 0.0]]),
        client="team")

    _serve(settings, jobs, job.id)

    done = jobs.get(job.id)
    assert done.status == "succeeded", done.error
    assert len(usecases.job_result(jobs, job.id, client=job.client).values or ()) == 1


def test_a_parameter_set_of_the_wrong_length_fails_its_job_naming_the_field(
        champion: str, settings: Settings) -> None:
    jobs = usecases.job_store(settings)
    job, _ = usecases.accept_job(jobs, settings, EvaluateJobRequest(
        kind="evaluate", model=champion, backend="aer", parameter_sets=[[0.1, -0.2]]),
        client="team")

    _serve(settings, jobs, job.id)

    failed = jobs.get(job.id)
    assert failed.status == "failed" and failed.error is not None
    assert (failed.error.error, failed.error.field) == ("InvalidInputError", "parameter_sets")
    assert "needs 4 values" in failed.error.message
