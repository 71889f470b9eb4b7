"""The retry unit of the execution plane: a Prefect task run per provider submission.

Each part of a split submission to a remote provider runs as a ``submit-job`` task; a local
engine's makes its first attempt without a task run, and becomes one only to be retried
(:func:`prefect_runner`). A transient failure (transport, provider rejection) makes Prefect
retry it with exponential backoff and jitter; the retry goes through the idempotency ledger,
so it re-attaches to the provider job when one exists. Validation, submission and execution
errors fail at once.

A flow called in-process does not notice a cancellation set through Prefect's API (only
workers and runners act on it), so the runner stops the run cooperatively before a submission
once the flow run is CANCELLING or CANCELLED. Asking Prefect costs a round trip to its server
(10-150 ms), so a thread asks every ``settings.cancel_poll_seconds`` while submissions keep
coming (:class:`CancelWatch`), and a submission only reads what it last heard; with 0, each
submission asks Prefect itself. The runner also stops before a submission once a SIGTERM
reached the process, even one Prefect lost (:mod:`tasks.stops`).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from uuid import UUID

import httpx
from prefect import State, Task, get_client, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import TaskRun
from prefect.context import SyncClientContext
from prefect.exceptions import MissingContextError, ObjectNotFound
from prefect.logging import get_run_logger
from prefect.tasks import exponential_backoff
from prefect.utilities.annotations import quote
from prefect.utilities.math import clamped_poisson_interval

from backends import Runner, Submission, SubmissionResult, Submitter
from qhybrid.core import QhybridError, RunCancelledError, Settings, is_transient
from tasks.stops import raise_if_stopped

log = logging.getLogger("qhybrid.run")


def retry_if_transient(task: Task[..., object], task_run: TaskRun, state: State) -> bool:
    """Prefect retry condition: retry only when the failure's class is transient."""
    return is_transient(state.result(raise_on_failure=False))


JITTER = 0.5
"""How far each retry's delay is jittered (Prefect's ``retry_jitter_factor``)."""


@task(name="submit-job", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient,
      retry_jitter_factor=JITTER)
def submit_job(submitter: Submitter, submission: Submission, key: str) -> SubmissionResult:
    """One idempotent attempt at a submission's result (retried by Prefect when transient)."""
    return submitter.attempt(submission, key)


def prefect_runner(settings: Settings) -> Runner:
    """A runner that retries each part as a :func:`submit_job` task run, with the settings'
    retries.

    Delays grow as ``b, 2b, 4b, ...`` for ``b = settings.retry_backoff_seconds``, each
    jittered by up to 50 %.

    A local engine's submission (a simulator: nothing to pay for, no provider to wait on)
    whose backend has no tag concurrency limit makes its first attempt in the calling task,
    without a task run of its own: a gate's dozens of simulator submissions would each cost
    a task run (about 14 ms of Prefect's engine, more than many of the submissions). If that
    attempt fails transiently, the same submission goes on as a ``submit-job`` task run after
    the first delay, with the retries left, so every retry is still Prefect's, visible in
    its UI, and re-attaches through the ledger. A remote provider's submission, and any under
    a concurrency limit, is a task run from its first attempt.
    """
    retries = settings.submission_retries
    backoff = settings.retry_backoff_seconds
    delays = exponential_backoff(backoff_factor=backoff)(retries) if backoff > 0 else []
    watches: dict[str, CancelWatch] = {}
    limited: dict[str, bool] = {}  # by backend: has a tag concurrency limit (asked once)
    jobs: dict[tuple[str, int], Task[[Submitter, Submission, str], SubmissionResult]] = {}

    def stop_if_asked(submitter: Submitter) -> None:
        raise_if_stopped()  # a SIGTERM Prefect lost: nothing more is submitted
        if submitter.flow_run_id:
            flow_run_id = submitter.flow_run_id
            watch = watches.setdefault(flow_run_id,
                                       CancelWatch(flow_run_id, settings.cancel_poll_seconds))
            watch.check()

    def run(submitter: Submitter, submission: Submission, key: str) -> SubmissionResult:
        stop_if_asked(submitter)
        name = submitter.backend.name
        tag = f"backend:{name}"
        if name not in limited:
            limited[name] = has_concurrency_limit(tag)
        left = retries
        if not submitter.remote and not limited[name]:
            try:
                return submitter.attempt(submission, key)
            except QhybridError as exc:
                if not exc.transient or retries == 0:
                    raise
                _logger().warning("submission %s on %s failed (%s: %s); retried as a "
                                  "submit-job task run", key[:12], name, type(exc).__name__, exc)
            if delays:
                time.sleep(clamped_poisson_interval(delays[0], clamping_factor=JITTER))
                stop_if_asked(submitter)  # the delay can be long
            left -= 1
        if (name, left) not in jobs:
            jobs[name, left] = submit_job.with_options(
                task_run_name=f"submit-job {tag}",
                tags={tag} if limited[name] else set(),
                retries=left, retry_delay_seconds=delays[retries - left:] if delays else 0)
        # quote(): Prefect need not walk circuits and arrays looking for futures.
        return jobs[name, left](quote(submitter), quote(submission), key, return_state=False)

    return run


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()  # the Prefect UI's log of the gate's task run
    except MissingContextError:
        return log


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
        state = _cancel_state(client, flow_run_id)
    if state is not None:
        raise _cancelled(flow_run_id, state)


def _cancel_state(client: SyncPrefectClient, flow_run_id: str) -> str | None:
    """The flow run's state name if it is CANCELLING or CANCELLED, else None."""
    state = client.read_flow_run(UUID(flow_run_id)).state
    if state is not None and (state.is_cancelling() or state.is_cancelled()):
        return state.name
    return None


def _cancelled(flow_run_id: str, state: str) -> RunCancelledError:
    return RunCancelledError(f"flow run {flow_run_id} was cancelled ({state}); "
                             "no further submissions")


class CancelWatch:
    """Whether a flow run is being cancelled, as a thread that asks Prefect last heard.

    The first :meth:`check` asks Prefect itself and starts a daemon thread that asks again
    every ``every`` seconds, with one client, for as long as checks keep coming: it ends
    after a period with none, and the next check starts over. So a burst of submissions waits
    for Prefect once, and a cancellation stops the next submission at most ``every`` seconds
    (plus one round trip) after it was set, as a poll before each submission would. With
    ``every`` 0, every check asks Prefect itself. Thread-safe.
    """

    def __init__(self, flow_run_id: str, every: float) -> None:
        """Watch ``flow_run_id``, asking Prefect every ``every`` seconds while checked."""
        self.flow_run_id = flow_run_id
        self.every = every
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._asked = 0.0
        self._cancelled: str | None = None  # the state's name, once seen

    def check(self) -> None:
        """Raise if the flow run was seen CANCELLING or CANCELLED.

        Raises:
            RunCancelledError: It was.
        """
        if self.every <= 0:
            raise_if_cancelled(self.flow_run_id)
            return
        with self._lock:
            self._asked = time.monotonic()
            if self._cancelled is None and (self._thread is None
                                            or not self._thread.is_alive()):
                with get_client(sync_client=True) as client:
                    self._cancelled = _cancel_state(client, self.flow_run_id)
                if self._cancelled is None:  # Prefect's settings (a test server's URL among
                    # them) live in contextvars, which a new thread does not inherit
                    self._thread = threading.Thread(
                        target=contextvars.copy_context().run, args=(self._watch,),
                        name=f"qhybrid-cancel-watch-{self.flow_run_id[:8]}", daemon=True)
                    self._thread.start()
        if self._cancelled is not None:
            raise _cancelled(self.flow_run_id, self._cancelled)

    def _watch(self) -> None:
        pause = threading.Event()  # never set: waits of ``every`` seconds between questions
        # A client of its own: the copied context may hold the flow's, which the flow closes.
        SyncClientContext.__var__.set(None)  # type: ignore[arg-type]
        try:
            with get_client(sync_client=True) as client:
                while not pause.wait(self.every):
                    with self._lock:
                        if time.monotonic() - self._asked > self.every:
                            # no submission for a whole period: stop asking; under the lock,
                            # so that a check either sees this thread alive or sees it ended
                            self._thread = None
                            return
                    state = _cancel_state(client, self.flow_run_id)
                    if state is not None:
                        self._cancelled = state
                        return
        except (httpx.HTTPError, ObjectNotFound, RuntimeError) as exc:  # the flow meets it too
            log.warning("could not ask Prefect whether flow run %s was cancelled: %r",
                        self.flow_run_id, exc)
        with self._lock:
            self._thread = None
