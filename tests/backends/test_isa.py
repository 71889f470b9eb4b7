"""The ISA cache: each circuit transpiled once, as ``transpile(circuit, backend)`` would."""

from __future__ import annotations

import pytest
from qiskit import transpile
from qiskit.circuit import QuantumCircuit
from qiskit.circuit.library import efficient_su2, qaoa_ansatz
from qiskit.providers import BackendV2
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer import AerSimulator
from qiskit_ibm_runtime.fake_provider import FakeManilaV2

from backends._isa import IsaCache


def circuits() -> list[QuantumCircuit]:
    ring = SparsePauliOp.from_sparse_list([("ZZ", [i, (i + 1) % 5], 1.0) for i in range(5)], 5)
    return [efficient_su2(5, reps=2), qaoa_ansatz(ring, reps=2).decompose(reps=2)]


def _sequence(circuit: QuantumCircuit) -> list[tuple[str, tuple[int, ...], tuple[str, ...]]]:
    return [(i.operation.name, tuple(circuit.find_bit(q).index for q in i.qubits),
             tuple(str(p) for p in i.operation.params)) for i in circuit.data]


class CountingAer(AerSimulator):
    """Aer's simulator, counting the reads of its ``target`` (a new Target on each read)."""

    reads = 0

    @property
    def target(self):  # type: ignore[override]
        CountingAer.reads += 1
        return super().target


@pytest.mark.parametrize(("device", "level"), [(AerSimulator(), 0), (AerSimulator(), 1),
                                               (FakeManilaV2(), 1), (FakeManilaV2(), 2)])
def test_isa_equals_transpiling_for_the_backend(device: BackendV2, level: int) -> None:
    cache = IsaCache("b", device, num_qubits=device.num_qubits, optimization_level=level, seed=7)
    for circuit in circuits():
        expected = transpile(circuit, device, optimization_level=level, seed_transpiler=7)
        isa = cache(circuit)
        assert isa == expected
        assert _sequence(isa) == _sequence(expected)  # the order Aer applies gates in, too
        assert isa.global_phase == expected.global_phase
        assert isa.layout == expected.layout
        assert cache(circuit) is isa  # transpiled once


def test_the_backends_target_is_read_once_for_every_circuit() -> None:
    CountingAer.reads = 0
    cache = IsaCache("aer", CountingAer(), num_qubits=None, optimization_level=0, seed=7)
    for circuit in circuits():
        cache(circuit)
    assert CountingAer.reads == 1


class PluginManila(FakeManilaV2):
    """A device that picks its own translation stage, as IBM's backends do."""

    asked = 0

    def get_translation_stage_plugin(self) -> str:
        PluginManila.asked += 1
        return "default"


def test_a_backend_with_stage_plugins_is_asked_for_them() -> None:
    # Its Target alone would lose the plugin it picks: such a backend is transpiled for itself.
    PluginManila.asked = 0
    device = PluginManila()
    cache = IsaCache("ibm", device, num_qubits=device.num_qubits, optimization_level=1, seed=7)
    circuit = circuits()[0]
    assert cache(circuit) == transpile(circuit, FakeManilaV2(), optimization_level=1,
                                       seed_transpiler=7)
    assert PluginManila.asked >= 1


def test_a_circuit_aer_runs_as_written_skips_the_transpiler(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import backends._isa as isa_module

    calls = []
    real = isa_module.transpile
    monkeypatch.setattr(isa_module, "transpile",
                        lambda *a, **k: calls.append(a[0].name) or real(*a, **k))
    custom = QuantumCircuit(2, name="custom")
    inner = QuantumCircuit(2, name="pair")
    inner.h(0)
    inner.cx(0, 1)
    custom.append(inner.to_gate(), [0, 1])  # a gate Aer does not know: the transpiler's work
    native = circuits()[1]
    for level in (0, 1):
        cache = IsaCache("aer", AerSimulator(), num_qubits=None, optimization_level=level, seed=7)
        for circuit in (native, custom):
            expected = transpile(circuit, AerSimulator(), optimization_level=level,
                                 seed_transpiler=7)
            isa = cache(circuit)
            assert isa == expected and _sequence(isa) == _sequence(expected)
    # Level 0 runs the native circuit as written; level 1 may optimise it; the custom gate
    # is always translated.
    assert calls == ["custom", native.name, "custom"]
