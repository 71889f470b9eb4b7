"""qiskit-ibm-runtime's exceptions (and those of the HTTP layer under it) translated into the
qhybrid tree, at this one boundary: what a job, an account or a request error means for a retry
(transient or not), for the ledger (a job that is gone is final) and for the user (the field to
fix)."""

from __future__ import annotations

import requests
from qiskit.providers.exceptions import QiskitBackendNotFoundError
from qiskit_ibm_runtime.api.exceptions import (
    ApiError,
    AuthenticationLicenseError,
    RequestsApiError,
    UserTimeoutExceededError,
)
from qiskit_ibm_runtime.exceptions import (
    IBMAccountError,
    IBMApiError,
    IBMBackendApiError,
    IBMBackendApiProtocolError,
    IBMBackendError,
    IBMBackendValueError,
    IBMError,
    IBMInputValueError,
    IBMNotAuthorizedError,
    IBMRuntimeError,
    RuntimeInvalidStateError,
    RuntimeJobFailureError,
    RuntimeJobMaxTimeoutError,
    RuntimeJobNotFound,
    RuntimeJobTimeoutError,
    RuntimeProgramNotFound,
)
from qiskit_ibm_runtime.models.exceptions import BackendConfigurationError, BackendPropertyError

from qhybrid.core import (
    BackendNameError,
    BackendRejectedError,
    ExecutionError,
    QhybridError,
    SubmissionError,
    TransportError,
)


def _http_status(code: int | None, message: str, status: str) -> QhybridError:
    # -1: no response at all; 429/5xx: the provider cannot take work now; 4xx: our request.
    if code is None or code < 0:
        return TransportError(message, provider_status=status)
    if code == 429 or code >= 500:
        return BackendRejectedError(message, provider_status=str(code))
    if code == 404:
        return ExecutionError(message, provider_status="NOT_FOUND")
    return SubmissionError(message, provider_status=str(code))


def map_runtime_error(exc: Exception, backend: str) -> QhybridError:
    """Translate a qiskit-ibm-runtime (or HTTP-layer) exception into the qhybrid tree.

    The provider's class name or HTTP status is kept as ``provider_status``, its message in
    the message. A job that is gone (cancelled, not found, over its maximum time) is final:
    an ``ExecutionError``, so that its ledger key is marked failed instead of re-attached.
    """
    status = type(exc).__name__
    message = f"{backend}: {exc}"
    if isinstance(exc, IBMNotAuthorizedError | IBMAccountError | AuthenticationLicenseError):
        return BackendNameError(message, field="ibm_token")
    if isinstance(exc, QiskitBackendNotFoundError):
        return BackendNameError(message, field="backend")
    if isinstance(exc, RuntimeJobTimeoutError | UserTimeoutExceededError):
        return TransportError(message, provider_status=status)
    if isinstance(exc, RuntimeJobFailureError):
        return ExecutionError(message, provider_status=status)
    if isinstance(exc, RuntimeInvalidStateError):
        return ExecutionError(message, provider_status="CANCELLED")
    if isinstance(exc, RuntimeJobNotFound | RuntimeProgramNotFound):
        return ExecutionError(message, provider_status="NOT_FOUND")
    if isinstance(exc, RuntimeJobMaxTimeoutError):
        return ExecutionError(message, provider_status="MAX_TIME")
    if isinstance(exc, IBMInputValueError | IBMBackendValueError):
        return SubmissionError(message, provider_status=status)
    if isinstance(exc, RequestsApiError):
        return _http_status(exc.status_code, message, status)
    if isinstance(exc, IBMBackendApiProtocolError | IBMBackendApiError | IBMApiError | ApiError):
        return TransportError(message, provider_status=status)
    if isinstance(exc, requests.Timeout | requests.ConnectionError):
        return TransportError(message, provider_status=status)
    if isinstance(exc, requests.HTTPError):
        return _http_status(exc.response.status_code if exc.response is not None else None,
                            message, status)
    if isinstance(exc, IBMRuntimeError | IBMBackendError):
        return BackendRejectedError(message, provider_status=status)
    return ExecutionError(message, provider_status=status)


RUNTIME_ERRORS = (
    IBMError,
    QiskitBackendNotFoundError,
    requests.RequestException,
    IBMAccountError,
    IBMBackendApiError,
    IBMBackendApiProtocolError,
    IBMInputValueError,
    IBMNotAuthorizedError,
    IBMRuntimeError,
    RuntimeJobFailureError,
    RuntimeJobTimeoutError,
    BackendConfigurationError,  # a device's reported configuration or properties, unreadable
    BackendPropertyError,
)
"""What a call into qiskit-ibm-runtime may raise that :func:`map_runtime_error` translates (a
test checks that every exception class of every ``exceptions`` module of qiskit-ibm-runtime is
among them)."""
