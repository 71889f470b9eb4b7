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
    QhybridError,
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
        x = _draw(self.plan)
        edges = np.cumsum([self.plan.transport, self.plan.timeout, self.plan.rejection,
                           self.plan.execution])
        error: QhybridError | None = None
        if x < edges[0]:
            error = TransportError(f"{self.name}: injected connection reset during {call}",
                                   provider_status="INJECTED_TRANSPORT")
        elif x < edges[1]:
            error = TransportError(f"{self.name}: injected timeout during {call}",
                                   provider_status="INJECTED_TIMEOUT")
        elif x < edges[2]:
            error = BackendRejectedError(f"{self.name}: injected maintenance rejection of {call}",
                                         provider_status="INJECTED_REJECTION")
        elif x < edges[3]:
            error = ExecutionError(f"{self.name}: injected job failure in {call}",
                                   provider_status="INJECTED_EXECUTION")
        if error is not None:
            INJECTED[type(error).__name__] += 1
            raise error

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
