"""Circuits as files: OpenQASM 3 (hashed) and QPY."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from qiskit import qasm3, qpy
from qiskit.circuit import QuantumCircuit

from qhybrid.core import CircuitRecord
from qhybrid.experiments._family import Workload


def bind(
    workload: Workload, circuit: QuantumCircuit, parameters: np.ndarray | tuple[float, ...]
) -> QuantumCircuit:
    """``circuit`` with the family-ordered ``parameters`` bound."""
    values = workload.circuit_points(parameters)[0]
    return circuit.assign_parameters(dict(zip(circuit.parameters, values, strict=True)))


def qasm3_sha256(circuit: QuantumCircuit) -> str:
    """SHA-256 of the circuit's OpenQASM 3 text (decomposed to standard gates first)."""
    return hashlib.sha256(qasm3.dumps(circuit.decompose(reps=3)).encode()).hexdigest()


def write_circuit(circuit: QuantumCircuit, folder: Path, role: str) -> CircuitRecord:
    """Write ``<role>.qasm`` and ``<role>.qpy`` under ``folder``.

    The OpenQASM 3 text is written from the circuit decomposed into standard gates, so it is
    readable by any OpenQASM 3 tool; QPY keeps the exact circuit.
    """
    folder.mkdir(parents=True, exist_ok=True)
    text = qasm3.dumps(circuit.decompose(reps=3))
    (folder / f"{role}.qasm").write_text(text, encoding="utf-8")
    with (folder / f"{role}.qpy").open("wb") as handle:
        qpy.dump(circuit, handle)
    return CircuitRecord(
        role=role,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        num_qubits=circuit.num_qubits,
        depth=circuit.depth(),
        qasm3_path=f"circuits/{role}.qasm",
        qpy_path=f"circuits/{role}.qpy",
    )
