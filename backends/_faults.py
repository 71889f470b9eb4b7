"""A fault-injecting wrapper around any backend, for running under failure on purpose.

It wraps the backend protocol (mitiq-style: a wrapper, not a subclass) and strikes where the
real failure would: transport, quota and maintenance faults before the provider sees the
submission; execution faults on a job the provider accepted; timeouts while waiting for a
job's result, so that a retry must re-attach. Draws come from one seeded generator per plan,
shared by every wrapper in the process, so a whole run under faults is reproducible; each
wrapper counts the faults it injected.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

import numpy as np

from backends._protocol import Backend, JobStatus, Submission, SubmissionResult
from backends._wrapper import BackendWrapper
from qhybrid.core import (
    BackendRejectedError,
    ExecutionError,
    FaultPlan,
    QhybridError,
    TransportError,
)

_LOCK = threading.Lock()
_GENERATORS: dict[FaultPlan, np.random.Generator] = {}
_SUBMITTED: list[str] = []  # the first job ids this process submitted (``crash``, ...)


class _SignalInFinalizer:
    """Sends ``signum`` when collected: its handler runs inside ``__del__``, where Python
    prints whatever the handler raises and drops it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def __del__(self) -> None:
        signal.raise_signal(self.signum)  # the handler runs before this returns


def _draw(plan: FaultPlan) -> float:
    with _LOCK:
        rng = _GENERATORS.setdefault(plan, np.random.default_rng(plan.seed))
        return float(rng.random())


class FaultyBackend(BackendWrapper):
    """Delegates to ``inner``, injecting classified faults at the plan's rates.

    Args:
        inner: Any backend.
        plan: Which faults, how often, and the seed.
    """

    def __init__(self, inner: Backend, plan: FaultPlan) -> None:
        super().__init__(inner)
        self.plan = plan
        self.injected: Counter[str] = Counter()
        """Faults this wrapper injected, by kind."""
        self._doomed: set[str] = set()

    def describe(self) -> dict[str, object]:
        """The wrapped backend's description, with the fault plan."""
        return {**self.inner.describe(), "faults": self.plan.model_dump()}

    def queue_depth(self) -> int | None:
        """The plan's queue, if it sets one; else the wrapped device's."""
        return self.plan.queue or super().queue_depth()

    def _inject(self, kind: str, cls: type[QhybridError], what: str) -> None:
        with _LOCK:
            self.injected[kind] += 1
        raise cls(f"{self.name}: injected {what}", provider_status=f"INJECTED_{kind.upper()}")

    def submit(self, submission: Submission, *, tag: str) -> str:
        """Submit, unless a submit-side fault strikes first.

        The submit-side classes own consecutive slices of [0, 1) by their rates; one draw
        per call. An ``execution`` fault lets the provider accept the job and dooms it.
        """
        x, edge = _draw(self.plan), 0.0
        faults: tuple[tuple[str, type[QhybridError], str], ...] = (
            ("transport", TransportError, "connection reset while submitting"),
            ("rejection", BackendRejectedError, "rejection: quota exhausted"),
            ("maintenance", BackendRejectedError, "rejection: backend under maintenance"),
        )
        for kind, cls, what in faults:
            edge += getattr(self.plan, kind)
            if x < edge:
                self._inject(kind, cls, what)
        job_id = self.backend.submit(submission, tag=tag)
        if len(_SUBMITTED) < max(self.plan.crash, self.plan.dropped_sigterm,
                                 self.plan.dropped_sigint):  # all ever needed
            with _LOCK:
                _SUBMITTED.append(job_id)
        if x < edge + self.plan.execution:
            with _LOCK:
                self._doomed.add(job_id)
        return job_id

    def status(self, job_id: str) -> JobStatus:
        """ERROR for a doomed job, else the wrapped backend's."""
        return "ERROR" if job_id in self._doomed else self.backend.status(job_id)

    def result(self, job_id: str) -> SubmissionResult:
        """The result, unless waiting for it times out, the job is doomed, or the plan says to
        crash the process now."""
        if self._nth(self.plan.crash, job_id):
            os.kill(os.getpid(), signal.SIGKILL)  # a crash: no cleanup, nothing flushed
        for signum, nth in ((signal.SIGTERM, self.plan.dropped_sigterm),
                            (signal.SIGINT, self.plan.dropped_sigint)):
            if self._nth(nth, job_id):
                _SignalInFinalizer(signum)  # collected at once
        if _draw(self.plan) < self.plan.timeout:
            self._inject("timeout", TransportError, f"timeout waiting for job {job_id}")
        if job_id in self._doomed:
            self._inject("execution", ExecutionError, f"failure of job {job_id}")
        return self.backend.result(job_id)

    @staticmethod
    def _nth(n: int, job_id: str) -> bool:
        return bool(n) and len(_SUBMITTED) >= n and _SUBMITTED[n - 1] == job_id
