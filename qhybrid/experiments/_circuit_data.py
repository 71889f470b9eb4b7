"""Deterministic circuit files for the bundled ``kind: circuit`` examples, run by dvc.yaml.

``qhybrid data ghz --qubits 3 --out data/ghz_3.qasm`` writes OpenQASM 3 text. QPY is not used
for generated data: its header records the Qiskit version that wrote it, and a parameter's
QPY record holds a random UUID, so the same circuit would not give the same bytes (and the
same DVC hash) on every machine. QPY files are read from users all the same.
"""

from __future__ import annotations

from pathlib import Path

from qiskit import qasm3
from qiskit.circuit import QuantumCircuit

from qhybrid.core import write_whole


def ghz_circuit(qubits: int) -> QuantumCircuit:
    """The GHZ state (|0...0> + |1...1>)/sqrt(2): a Hadamard and a CNOT chain.

    Raises:
        ValueError: Fewer than 2 qubits.
    """
    if qubits < 2:
        raise ValueError(f"a GHZ state needs at least 2 qubits, not {qubits}")
    circuit = QuantumCircuit(qubits, name=f"ghz_{qubits}")
    circuit.h(0)
    for qubit in range(qubits - 1):
        circuit.cx(qubit, qubit + 1)
    return circuit


def write_qasm3(circuit: QuantumCircuit, out: Path) -> None:
    """Write the circuit as OpenQASM 3, atomically (a partial file never replaces a good one)."""
    write_whole(out, qasm3.dumps(circuit))
