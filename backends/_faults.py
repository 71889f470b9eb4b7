"""A fault-injecting wrapper around any backend, for running under failure on purpose.

It wraps the executor (mitiq-style), not the backend class: every estimate or sample call
first draws from one seeded generator per plan, shared by all wrappers in the process, so a
retried call draws anew and a whole run under faults is reproducible.
"""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from qhybrid.core import (
    BackendRejectedError,
    ExecutionError,
    FaultPlan,
    TransportError,
)

_LOCK = threading.Lock()
_GENERATORS: dict[FaultPlan, np.random.Generator] = {}
INJECTED: Counter[str] = Counter()
"""Faults injected in this process, by class name (read by reports and tests)."""


def _draw(plan: FaultPlan) -> float:
    with _LOCK:
        rng = _GENERATORS.setdefault(plan, np.random.default_rng(plan.seed))
        return float(rng.random())


class FaultyBackend:
    """Delegates to ``inner``; before each call, may raise an injected, classified error.

    Args:
        inner: Any backend with ``estimate``, ``sample``, ``describe`` and ``num_qubits``.
        plan: Which faults, how often, and the seed.
    """

    def __init__(self, inner, plan: FaultPlan) -> None:  # noqa: ANN001 - any backend
        self.inner = inner
        self.plan = plan
        self.name = inner.name

    @property
    def num_qubits(self) -> int | None:
        """The wrapped backend's qubit count."""
        return self.inner.num_qubits

    def describe(self) -> dict[str, object]:
        """The wrapped backend's description, with the fault plan."""
        return {**self.inner.describe(), "faults": self.plan.model_dump()}

    def _maybe_fail(self, call: str) -> None:
        # One draw per call; the classes own consecutive slices of [0, 1) by their rates.
        kinds = (
            (self.plan.transport, TransportError, "connection reset during", "TRANSPORT"),
            (self.plan.timeout, TransportError, "timeout during", "TIMEOUT"),
            (self.plan.rejection, BackendRejectedError, "maintenance rejection of", "REJECTION"),
            (self.plan.execution, ExecutionError, "job failure in", "EXECUTION"),
        )
        x, edge = _draw(self.plan), 0.0
        for rate, cls, what, status in kinds:
            edge += rate
            if x < edge:
                INJECTED[cls.__name__] += 1
                raise cls(f"{self.name}: injected {what} {call}",
                          provider_status=f"INJECTED_{status}")

    def estimate(
        self, circuit: QuantumCircuit, observable: SparsePauliOp, points: np.ndarray, *, seed: int
    ) -> np.ndarray:
        """As the wrapped backend's, unless a fault is injected."""
        self._maybe_fail("estimate")
        return self.inner.estimate(circuit, observable, points, seed=seed)

    def sample(
        self, circuit: QuantumCircuit, points: np.ndarray, *, shots: int, seed: int
    ) -> list[dict[str, int]]:
        """As the wrapped backend's, unless a fault is injected."""
        self._maybe_fail("sample")
        return self.inner.sample(circuit, points, shots=shots, seed=seed)
