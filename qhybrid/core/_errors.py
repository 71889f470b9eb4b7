"""The qhybrid exception tree.

Every error qhybrid raises on purpose derives from :class:`QhybridError`. Each class knows
its layer and whether retrying can help (``transient``). What a class means to a user (a CLI
exit code, an HTTP status) is decided at that entry point, not here.

    QhybridError
    ├── InvalidInputError            validation: spec, flag, data, setting (never transient)
    │   ├── SpecError                the spec file or one of its fields
    │   ├── BackendNameError         a backend string that names nothing we can run
    │   ├── DataError                missing input data, or data that does not match dvc.lock
    │   ├── JobConflictError         an idempotency key reused with a different request
    │   └── JobNotFoundError         no job (or no result yet) with that id
    ├── BackendError                 the execution seam
    │   ├── TransportError           the call never reached the provider (transient)
    │   ├── SubmissionError          the provider refused the request as formed (fail fast)
    │   ├── BackendRejectedError     quota, maintenance, offline (transient)
    │   ├── BreakerOpenError         our circuit breaker refuses the backend for now (fail fast)
    │   ├── QpuBudgetError           the QPU budget left does not pay for the submission (fail fast)
    │   └── ExecutionError           the job ran and failed
    ├── PostProcessingError          results could not be turned into metrics
    ├── TrackingError                MLflow, promotion log, manifest or state store unusable
    ├── ReplayMismatchError          a replay did not reproduce the recorded counts or circuit
    └── RunCancelledError            the flow run was cancelled while it worked

Foreign exceptions are translated once, at the boundary that meets them, with
``raise Mapped(...) from exc``.
"""

from __future__ import annotations

from typing import ClassVar


class QhybridError(Exception):
    """Root of every error qhybrid raises on purpose.

    Attributes:
        layer: Which layer the failure belongs to.
        transient: Whether the same call may succeed if retried.
        field: For input errors, the dotted name of the offending field, if known.
        provider_status: The provider's original status, when a provider was involved.
        recovery: The recovery action taken (retry, re-attach, fallback), set as it happens.
        detail: JSON-ready evidence for the error (e.g. what a replay found), if any.
    """

    layer: ClassVar[str] = "internal"
    transient: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        provider_status: str | None = None,
        detail: dict[str, object] | None = None,
    ) -> None:
        self.message = message
        self.field = field
        self.provider_status = provider_status
        self.detail = detail
        self.recovery: str | None = None
        super().__init__(f"{field}: {message}" if field else message)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description of the error, for reports."""
        return {
            "error": type(self).__name__,
            "layer": self.layer,
            "transient": self.transient,
            "field": self.field,
            "message": self.message,
            "provider_status": self.provider_status,
            "recovery": self.recovery,
            "detail": self.detail,
        }


class InvalidInputError(QhybridError):
    """Input that can never succeed as given; the user must change it."""

    layer = "validation"


class SpecError(InvalidInputError):
    """The experiment spec, or one of its fields, is invalid."""


class BackendNameError(InvalidInputError):
    """A backend string names no backend qhybrid can run."""


class DataError(InvalidInputError):
    """Input data is missing, unreadable, or does not match its DVC pin."""


class JobConflictError(InvalidInputError):
    """An idempotency key already names a job with a different request."""


class JobNotFoundError(InvalidInputError):
    """No job (or result) has that id."""


class BackendError(QhybridError):
    """A failure at the execution seam."""

    layer = "execution"


class TransportError(BackendError):
    """The request never reached the provider, or its answer never came back."""

    layer = "transport"
    transient = True


class SubmissionError(BackendError):
    """The provider refused the request as formed (bad options, too large)."""

    layer = "submission"


class BackendRejectedError(BackendError):
    """The provider cannot take work now: quota, maintenance, offline."""

    layer = "backend-rejection"
    transient = True


class BreakerOpenError(BackendError):
    """The backend's circuit breaker is open: new work fails fast until the cool-down ends."""

    layer = "backend-rejection"


class QpuBudgetError(BackendError):
    """The QPU budget (``QHYBRID_QPU_BUDGET_SECONDS``) left in its window does not pay for the
    submission's estimated QPU seconds: refused before anything is sent."""

    layer = "budget"


class ExecutionError(BackendError):
    """The job was accepted and failed while running."""

    layer = "execution"


class PostProcessingError(QhybridError):
    """Raw results could not be turned into metrics."""

    layer = "post-processing"


class TrackingError(QhybridError):
    """The system of record (MLflow, promotion log, manifest) could not be written or read."""

    layer = "tracking"


class ReplayMismatchError(QhybridError):
    """A replay did not reproduce the recorded simulator counts bit for bit, or the manifest
    does not match its own hashes (edited after the run)."""

    layer = "replay"


class RunCancelledError(QhybridError):
    """Someone cancelled the flow run (Prefect UI, API or CLI); work stops at the next step."""

    layer = "orchestration"


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the call that raised ``exc`` can help.

    Args:
        exc: Any exception.

    Returns:
        True only for qhybrid errors whose class is marked transient.
    """
    return isinstance(exc, QhybridError) and exc.transient
