"""The execution seam: one backend protocol (submit, status, result, cancel, estimate) over
Aer, qiskit-ibm-runtime's local testing mode and real IBM devices, with idempotent submission,
circuit breakers, leases and fault injection.

No qiskit-ibm-runtime or Aer type leaves this package; its exceptions are mapped into qhybrid's
tree.

qiskit-ibm-runtime (with mthree, 1.5 s to import) is imported when an IBM backend or a
mitigation arm first needs it: ``IbmBackend``, ``map_runtime_error`` and ``mitigation_options``
are loaded on first access, so an Aer run never pays for it.
"""

import importlib
from typing import TYPE_CHECKING

from backends._aer import AerBackend
from backends._breaker import CircuitBreaker
from backends._devices import calibration_snapshot, check_width, fake_device
from backends._factory import memory_store, open_backend, open_engine, open_executor, qpu_budget
from backends._faults import FaultyBackend
from backends._jobs import LocalJobs
from backends._leases import release_leases
from backends._mitigation import DEFAULT_PRECISION
from backends._protocol import (
    Backend,
    BackendLimits,
    Described,
    Engine,
    Mode,
    Pub,
    ReportsQueue,
    Submission,
    SubmissionResult,
    SupportsModes,
    SupportsRelease,
    idempotency_key,
    split,
)
from backends._store import BreakerRow, LeaseRow, LedgerRow, QpuBudget, StateStore
from backends._submit import BackendExecutor, ExecutionLog, Runner, Submitter, attempt_once
from backends._wrapper import BackendWrapper, DescribedWrapper

if TYPE_CHECKING:
    from backends._ibm import IbmBackend, mitigation_options
    from backends._ibm_errors import map_runtime_error

_LAZY = {"IbmBackend": "_ibm", "mitigation_options": "_ibm", "map_runtime_error": "_ibm_errors"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(f"backends.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'backends' has no attribute {name!r}")


__all__ = [
    "DEFAULT_PRECISION",
    "AerBackend",
    "Backend",
    "BackendExecutor",
    "BackendLimits",
    "BackendWrapper",
    "BreakerRow",
    "CircuitBreaker",
    "Described",
    "DescribedWrapper",
    "Engine",
    "ExecutionLog",
    "FaultyBackend",
    "IbmBackend",
    "LeaseRow",
    "LedgerRow",
    "LocalJobs",
    "Mode",
    "Pub",
    "QpuBudget",
    "ReportsQueue",
    "Runner",
    "StateStore",
    "Submission",
    "SubmissionResult",
    "Submitter",
    "SupportsModes",
    "SupportsRelease",
    "attempt_once",
    "calibration_snapshot",
    "check_width",
    "fake_device",
    "idempotency_key",
    "map_runtime_error",
    "memory_store",
    "mitigation_options",
    "open_backend",
    "open_engine",
    "open_executor",
    "qpu_budget",
    "release_leases",
    "split",
]
