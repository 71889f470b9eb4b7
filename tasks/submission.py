"""The retry unit of the execution plane: one Prefect task run per provider submission.

Each part of a split submission runs as a ``submit-job`` task. A transient failure (transport,
provider rejection) makes Prefect retry it with exponential backoff and jitter; the retry goes
through the idempotency ledger, so it re-attaches to the provider job when one exists.
Validation, submission and execution errors fail at once.

A flow called in-process does not notice a cancellation set through Prefect's API (only
workers and runners act on it), so the runner checks the flow run's state before each
submission, at most once per ``settings.cancel_poll_seconds``, and stops the run cooperatively.
It also stops before a submission once a SIGTERM reached the process, even one Prefect lost
(:mod:`tasks.stops`).
"""

from __future__ import annotations

import time
from uuid import UUID

from prefect import State, Task, get_client, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.exceptions import ObjectNotFound
from prefect.tasks import exponential_backoff
from prefect.utilities.annotations import quote

from backends import Runner, Submission, SubmissionResult, Submitter
from qhybrid.core import RunCancelledError, Settings, is_transient
from tasks.stops import raise_if_stopped


def retry_if_transient(task: Task[..., object], task_run: TaskRun, state: State) -> bool:
    """Prefect retry condition: retry only when the failure's class is transient."""
    return is_transient(state.result(raise_on_failure=False))


@task(name="submit-job", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient,
      retry_jitter_factor=0.5)
def submit_job(submitter: Submitter, submission: Submission, key: str) -> SubmissionResult:
    """One idempotent attempt at a submission's result (retried by Prefect when transient)."""
    return submitter.attempt(submission, key)


def prefect_runner(settings: Settings) -> Runner:
    """A runner that sends each part through :func:`submit_job` with the settings' retries.

    Delays grow as ``b, 2b, 4b, ...`` for ``b = settings.retry_backoff_seconds``, each
    jittered by up to 50 %.
    """
    configured = submit_job.with_options(
        retries=settings.submission_retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=settings.retry_backoff_seconds)
        if settings.retry_backoff_seconds > 0 else 0,
    )

    last_check = [0.0]
    by_backend: dict[str, Task[[Submitter, Submission, str], SubmissionResult]] = {}

    def run(submitter: Submitter, submission: Submission, key: str) -> SubmissionResult:
        raise_if_stopped()  # a SIGTERM Prefect lost: nothing more is submitted
        if (submitter.flow_run_id
                and time.monotonic() - last_check[0] >= settings.cancel_poll_seconds):
            last_check[0] = time.monotonic()
            raise_if_cancelled(submitter.flow_run_id)
        name = submitter.backend.name
        if name not in by_backend:
            tag = f"backend:{name}"
            by_backend[name] = configured.with_options(
                task_run_name=f"submit-job {tag}",
                tags={tag} if has_concurrency_limit(tag) else set())
        # quote(): Prefect need not walk circuits and arrays looking for futures.
        return by_backend[name](quote(submitter), quote(submission), key, return_state=False)

    return run


def has_concurrency_limit(tag: str) -> bool:
    """Whether the Prefect server holds a tag concurrency limit for ``tag``."""
    with get_client(sync_client=True) as client:
        try:
            client.read_concurrency_limit_by_tag(tag)
        except ObjectNotFound:
            return False
    return True


def raise_if_cancelled(flow_run_id: str) -> None:
    """Stop work if the flow run is being cancelled.

    Raises:
        RunCancelledError: The flow run is CANCELLING or CANCELLED.
    """
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(flow_run_id)).state
    if state is not None and (state.is_cancelling() or state.is_cancelled()):
        raise RunCancelledError(f"flow run {flow_run_id} was cancelled ({state.name}); "
                                "no further submissions")
