"""The job service of local providers: simulator work as durable jobs in the state store.

Aer and qiskit-ibm-runtime's local testing mode compute in-process and synchronously. Wrapped
here, each submission becomes a job with an id, a tag and a stored outcome, so a job outlives
the process that submitted it exactly as a remote provider's job does, and a restarted flow can
re-attach to it by id or find it by tag.
"""

from __future__ import annotations

import json
import uuid

from backends._protocol import Engine, JobStatus, Submission, SubmissionResult
from backends._store import StateStore
from backends._wrapper import DescribedWrapper
from qhybrid.core import (
    BackendError,
    ExecutionError,
    InvalidInputError,
    QhybridError,
    SubmissionError,
)

_ERRORS = {cls.__name__: cls for cls in (ExecutionError, SubmissionError, BackendError)}


class LocalJobs(DescribedWrapper):
    """A :class:`~backends._protocol.Backend` over a local engine and the state store.

    Args:
        engine: The simulator that does the work.
        store: Where jobs and their outcomes are kept.
    """

    def __init__(self, engine: Engine, store: StateStore) -> None:
        super().__init__(engine)
        self.engine = engine
        self.store = store

    def submit(self, submission: Submission, *, tag: str) -> str:
        """Run the work and store the outcome under a new job id.

        A job that fails while running is still a job (status ERROR, error kept); input the
        engine refuses as formed raises at once and creates none.

        Raises:
            SubmissionError: The engine refuses the submission as formed.
            InvalidInputError: The work cannot fit the device (e.g. too wide).
        """
        refused = self.refused_options(submission)
        if refused:
            raise SubmissionError(f"{self.name} would not apply: {', '.join(refused)}",
                                  field=refused[0])
        job_id = f"local-{uuid.uuid4().hex}"
        try:
            result = self.engine.run(submission)
        except (SubmissionError, InvalidInputError):
            raise
        except QhybridError as exc:
            self.store.put_local_job(job_id, self.name, tag, "ERROR", None,
                                     json.dumps(exc.to_dict()))
            return job_id
        self.store.put_local_job(job_id, self.name, tag, "DONE", result.to_json(), None)
        return job_id

    def find(self, tag: str, *, since: float | None = None) -> str | None:
        """The newest job of this backend tagged ``tag``, created at or after ``since``."""
        return self.store.local_job_by_tag(self.name, tag, since=since)

    def status(self, job_id: str) -> JobStatus:
        """DONE, ERROR or CANCELLED.

        Raises:
            ExecutionError: No such job.
        """
        # A str column to mypy; the store only ever writes DONE, ERROR or CANCELLED into it.
        return self._row(job_id)[0]  # type: ignore[return-value]

    def _row(self, job_id: str) -> tuple[str, str | None, str | None]:
        row = self.store.local_job(job_id)
        if row is None:
            raise ExecutionError(f"{self.name}: no job {job_id}", provider_status="NOT_FOUND")
        return row

    def result(self, job_id: str) -> SubmissionResult:
        """The stored result.

        Raises:
            ExecutionError: The job failed, was cancelled or does not exist (the original
                error's class, status and message are kept).
        """
        status, result, error = self._row(job_id)
        if status == "DONE" and result is not None:
            return SubmissionResult.from_json(result)
        if status == "ERROR" and error is not None:
            data = json.loads(error)
            cls = _ERRORS.get(str(data.get("error")), ExecutionError)
            raise cls(str(data.get("message")), provider_status=data.get("provider_status"))
        raise ExecutionError(f"{self.name}: job {job_id} is {status}", provider_status=status)

    def cancel(self, job_id: str) -> None:
        """Local jobs finish at submission; cancelling one that has is a no-op."""
        self.store.cancel_local_job(job_id)

    def release(self, kind: str, provider_id: str) -> None:
        """Close a lease left open: cancel the job, or close the engine's Session or Batch."""
        if kind == "job":
            self.cancel(provider_id)
        else:
            self.close_mode(cancel=True)
