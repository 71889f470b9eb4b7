"""The qhybrid exception tree.

Every error qhybrid raises on purpose derives from :class:`QhybridError`. Each class knows
its layer, whether retrying can help (``transient``) and the CLI exit code it maps to.

    QhybridError
    ├── InvalidInputError            validation: spec, flag, data (exit 2, never transient)
    │   ├── SpecError                the spec file or one of its fields
    │   ├── BackendNameError         a backend string that names nothing we can run
    │   └── DataError                missing input data, or data that does not match dvc.lock
    ├── BackendError                 the execution seam (exit 4)
    │   ├── TransportError           the call never reached the provider (transient)
    │   ├── SubmissionError          the provider refused the request as formed (fail fast)
    │   ├── BackendRejectedError     quota, maintenance, offline (transient)
    │   ├── BreakerOpenError         our circuit breaker refuses the backend for now (fail fast)
    │   └── ExecutionError           the job ran and failed
    ├── PostProcessingError          results could not be turned into metrics (exit 5)
    ├── TrackingError                MLflow, promotion log or manifest could not be written (exit 6)
    ├── ReplayMismatchError          a replay did not reproduce the recorded counts (exit 7)
    └── RunCancelledError            the flow run was cancelled while it worked (exit 8)

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
        exit_code: The CLI exit code for this class.
        field: For input errors, the dotted name of the offending field, if known.
        provider_status: The provider's original status, when a provider was involved.
        recovery: The recovery action taken (retry, re-attach, fallback), set as it happens.
    """

    layer: ClassVar[str] = "internal"
    transient: ClassVar[bool] = False
    exit_code: ClassVar[int] = 1

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        provider_status: str | None = None,
    ) -> None:
        self.message = message
        self.field = field
        self.provider_status = provider_status
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
        }


class InvalidInputError(QhybridError):
    """Input that can never succeed as given; the user must change it."""

    layer = "validation"
    exit_code = 2


class SpecError(InvalidInputError):
    """The experiment spec, or one of its fields, is invalid."""


class BackendNameError(InvalidInputError):
    """A backend string names no backend qhybrid can run."""


class DataError(InvalidInputError):
    """Input data is missing, unreadable, or does not match its DVC pin."""


class BackendError(QhybridError):
    """A failure at the execution seam."""

    layer = "execution"
    exit_code = 4


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


class ExecutionError(BackendError):
    """The job was accepted and failed while running."""

    layer = "execution"


class PostProcessingError(QhybridError):
    """Raw results could not be turned into metrics."""

    layer = "post-processing"
    exit_code = 5


class TrackingError(QhybridError):
    """The system of record (MLflow, promotion log, manifest) could not be written or read."""

    layer = "tracking"
    exit_code = 6


class ReplayMismatchError(QhybridError):
    """A replay did not reproduce the recorded simulator counts bit for bit."""

    layer = "replay"
    exit_code = 7


class RunCancelledError(QhybridError):
    """Someone cancelled the flow run (Prefect UI, API or CLI); work stops at the next step."""

    layer = "orchestration"
    exit_code = 8


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the call that raised ``exc`` can help.

    Args:
        exc: Any exception.

    Returns:
        True only for qhybrid errors whose class is marked transient.
    """
    return isinstance(exc, QhybridError) and exc.transient
