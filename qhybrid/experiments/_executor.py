"""The executor seam as the domain sees it: estimate and sample, batched by parameter array.

Backends implement this structurally; the domain never imports them.
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
        """Name, version, qubit count and a JSON-ready calibration snapshot."""
        ...
