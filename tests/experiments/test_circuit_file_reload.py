"""A circuit file read again: the same text gives the same circuit, a changed file the new one,
and no reader's copy reaches another's."""

from __future__ import annotations

from pathlib import Path

from qiskit import qasm3
from qiskit.circuit import Parameter, QuantumCircuit

from qhybrid.experiments import load_instance
from qhybrid.experiments._circuit_file import CircuitInstance


def _write(path: Path, angle: str) -> None:
    circuit = QuantumCircuit(2)
    circuit.ry(Parameter(angle), 0)
    circuit.cx(0, 1)
    path.write_text(qasm3.dumps(circuit))


def test_a_changed_file_is_read_anew_and_copies_stay_apart(tmp_path: Path) -> None:
    path = tmp_path / "c.qasm"
    _write(path, "theta")
    first = load_instance(path)
    assert isinstance(first, CircuitInstance)
    mine = first.circuit()
    mine.x(1)  # a caller changes its copy
    again = load_instance(path)
    assert isinstance(again, CircuitInstance)
    assert again.circuit() == first.circuit() != mine
    assert [p.name for p in again.circuit().parameters] == ["theta"]
    _write(path, "phi")
    changed = load_instance(path)
    assert isinstance(changed, CircuitInstance)
    assert [p.name for p in changed.circuit().parameters] == ["phi"]
