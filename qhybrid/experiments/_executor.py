"""The executor seam as the domain sees it: estimate and sample, batched by parameter array.

Backends implement this structurally; the domain never imports them. An executor whose
``describe()`` says ``"exact": True`` (the ideal ``aer`` simulator) estimates expectation values
exactly at precision 0 (:func:`is_exact`); the runner then reports exact metrics.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

Counts = dict[str, int]


class Executor(Protocol):
    """Runs logical circuits; transpiling for its device is its own business."""

    name: str

    def estimate(
        self, circuit: QuantumCircuit, observable: SparsePauliOp, points: np.ndarray, *, seed: int
    ) -> np.ndarray:
        """Expectation values of ``observable``, one per row of ``points`` (one PUB).

        Args:
            circuit: A logical, parametrised circuit without measurements.
            observable: Acting on the circuit's qubits.
            points: Shape ``(n, circuit.num_parameters)``, in ``circuit.parameters`` order.
            seed: Seed of any randomness the backend uses.
        """
        ...

    def estimate_with_stds(
        self, circuit: QuantumCircuit, observable: SparsePauliOp, points: np.ndarray, *, seed: int
    ) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
        """As :meth:`estimate`, with the standard errors and the provider's metadata (its
        ``shots``, when it reports them)."""
        ...

    def sample(
        self, circuit: QuantumCircuit, points: np.ndarray, *, shots: int, seed: int
    ) -> list[Counts]:
        """Measured counts, one dict per row of ``points`` (one PUB).

        Args:
            circuit: A logical, parametrised circuit with final measurements.
            points: Shape ``(n, circuit.num_parameters)``, in ``circuit.parameters`` order.
            shots: Shots per row.
            seed: Simulator seed; the same seed gives the same counts on simulators.
        """
        ...

    def describe(self) -> dict[str, object]:
        """Name, version, qubit count, a JSON-ready calibration snapshot, and ``exact``: True
        when estimates at precision 0 are exact expectation values (absent means False)."""
        ...


def is_exact(executor: Executor) -> bool:
    """Whether ``executor`` estimates exactly (an ideal, noise-free simulator).

    Read from ``describe()``, which every wrapper of a backend forwards, so that the
    fault-injecting and job-service layers need not know about it.
    """
    return executor.describe().get("exact") is True
