"""Delegating bases for wrappers of engines and backends (mitiq-style: wrap, don't subclass).

A wrapper forwards every member of the protocol to ``inner`` and overrides only what it
changes, so a member added to the protocol is forwarded in one place.
"""

from __future__ import annotations

from backends._protocol import (
    Backend,
    BackendLimits,
    Described,
    JobStatus,
    Mode,
    ReportsQueue,
    Submission,
    SubmissionResult,
    SupportsModes,
    SupportsRelease,
)
from qhybrid.core import SubmissionError


class DescribedWrapper:
    """Forwards what a backend or engine tells about itself, and its execution modes.

    Args:
        inner: The wrapped engine or backend.
    """

    def __init__(self, inner: Described) -> None:
        self.inner = inner
        self.name: str = inner.name
        self.limits: BackendLimits = inner.limits
        self.remote: bool = inner.remote

    @property
    def fingerprint(self) -> str:
        """The wrapped fingerprint."""
        return self.inner.fingerprint

    @property
    def num_qubits(self) -> int | None:
        """The wrapped qubit count."""
        return self.inner.num_qubits

    def describe(self) -> dict[str, object]:
        """The wrapped description."""
        return self.inner.describe()

    def refused_options(self, submission: Submission) -> list[str]:
        """What the wrapped one would not apply."""
        return self.inner.refused_options(submission)

    def estimate_qpu_seconds(self, submission: Submission) -> float:
        """The wrapped estimate."""
        return self.inner.estimate_qpu_seconds(submission)

    def open_mode(self, mode: Mode) -> str:
        """Open the wrapped Session or Batch.

        Raises:
            SubmissionError: The wrapped one has no execution modes.
        """
        if not isinstance(self.inner, SupportsModes):
            raise SubmissionError(f"{self.name} has no {mode} mode", field="mode")
        return self.inner.open_mode(mode)

    def close_mode(self, *, cancel: bool = False) -> None:
        """Close the wrapped Session or Batch, if it has modes."""
        if isinstance(self.inner, SupportsModes):
            self.inner.close_mode(cancel=cancel)

    def queue_depth(self) -> int | None:
        """The wrapped device's queue (None when it has none: a local simulator)."""
        return self.inner.queue_depth() if isinstance(self.inner, ReportsQueue) else None


class BackendWrapper(DescribedWrapper):
    """Forwards the whole backend protocol to ``inner``.

    Args:
        inner: The wrapped backend.
    """

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.backend = inner

    def submit(self, submission: Submission, *, tag: str) -> str:
        """As the wrapped backend's."""
        return self.backend.submit(submission, tag=tag)

    def find(self, tag: str, *, since: float | None = None) -> str | None:
        """As the wrapped backend's."""
        return self.backend.find(tag, since=since)

    def status(self, job_id: str) -> JobStatus:
        """As the wrapped backend's."""
        return self.backend.status(job_id)

    def result(self, job_id: str) -> SubmissionResult:
        """As the wrapped backend's."""
        return self.backend.result(job_id)

    def cancel(self, job_id: str) -> None:
        """As the wrapped backend's."""
        self.backend.cancel(job_id)

    def release(self, kind: str, provider_id: str) -> None:
        """As the wrapped backend's; a job is cancelled when the backend cannot release."""
        if isinstance(self.backend, SupportsRelease):
            self.backend.release(kind, provider_id)
        elif kind == "job":
            self.backend.cancel(provider_id)
