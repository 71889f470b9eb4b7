"""What every backend does the same way: transpile once per circuit, read counts per row."""

from __future__ import annotations

import numpy as np
from qiskit import transpile
from qiskit.circuit import QuantumCircuit
from qiskit.converters import circuit_to_dag, dag_to_circuit
from qiskit.primitives import SamplerPubResult
from qiskit.providers import BackendV2
from qiskit.transpiler import PassManager, Target
from qiskit.transpiler.exceptions import TranspilerError
from qiskit.transpiler.passes import GatesInBasis

from backends._devices import check_width
from qhybrid.core import SubmissionError


class IsaCache:
    """Transpiles each logical circuit once for one target, with a recorded seed.

    Args:
        backend: Backend name, for errors.
        target: What to transpile for (a device, or Aer itself).
        num_qubits: The device's qubits; None when unbounded.
        optimization_level: Qiskit preset level.
        seed: ``seed_transpiler``.
    """

    def __init__(self, backend: str, target: BackendV2, *, num_qubits: int | None,
                 optimization_level: int, seed: int) -> None:
        self.backend, self.target, self.num_qubits = backend, target, num_qubits
        self.optimization_level, self.seed = optimization_level, seed
        # Read once: AerSimulator builds a new Target on every read of ``.target``, and
        # ``transpile(circuit, backend)`` reads it over a hundred times (about 0.1 s for a
        # 12-qubit circuit); transpiling against the Target gives the same circuit. Only for
        # a backend that picks no transpiler plugins of its own: IBM's choose their
        # translation stage, which the Target alone would lose.
        self._compile_for: Target | BackendV2 | None = None
        self._coupling: bool | None = None  # whether the Target has a coupling map
        # Keyed by id(); the circuit is kept alive with its ISA so the id cannot be reused.
        self._isa: dict[int, tuple[QuantumCircuit, QuantumCircuit]] = {}

    def __call__(self, circuit: QuantumCircuit) -> QuantumCircuit:
        """The circuit as the target executes it.

        Raises:
            BackendNameError: The circuit is wider than the device.
            SubmissionError: The transpiler cannot map it.
        """
        cached = self._isa.get(id(circuit))
        if cached is not None and cached[0] is circuit:
            return cached[1]
        check_width(self.backend, circuit, self.num_qubits)
        try:
            if self._compile_for is None:
                self._compile_for = (self.target if _picks_plugins(self.target)
                                     else self.target.target)
            if isinstance(self._compile_for, Target) and self._native(circuit):
                # What the transpiler returns: the circuit through its DAG, whose order (not
                # the source's) sets how Aer applies and fuses the gates, to the last bit.
                isa = dag_to_circuit(circuit_to_dag(circuit))
            elif isinstance(self._compile_for, Target):
                isa = transpile(circuit, target=self._compile_for,
                                optimization_level=self.optimization_level,
                                seed_transpiler=self.seed)
            else:
                isa = transpile(circuit, self._compile_for,
                                optimization_level=self.optimization_level,
                                seed_transpiler=self.seed)
        except TranspilerError as exc:
            raise SubmissionError(f"{self.backend}: cannot transpile: {exc}") from exc
        self._isa[id(circuit)] = (circuit, isa)
        return isa


    def _native(self, circuit: QuantumCircuit) -> bool:
        """Whether ``circuit`` already is what the target runs, so that the preset pass manager
        at level 0 would change nothing in its DAG: every operation in the target, a target
        without a coupling map (no layout, no routing), nothing to optimise.

        Building the preset pass manager loads every installed transpiler plugin (about a
        second, most of it importing qiskit-ibm-runtime), which an Aer run of a circuit
        written in standard gates never needs.
        """
        target = self._compile_for
        if self.optimization_level != 0 or not isinstance(target, Target):
            return False
        if self._coupling is None:
            self._coupling = target.build_coupling_map() is not None
        if self._coupling:
            return False
        check = PassManager([GatesInBasis(target=target)])
        check.run(circuit)
        return bool(check.property_set["all_gates_in_basis"])


def counts_by_row(result: SamplerPubResult) -> list[dict[str, int]]:
    """Counts of the PUB's (first) classical register, one sorted dict per parameter row."""
    data = next(iter(result.data.values()))
    rows = int(np.prod(data.shape)) if data.shape else 1
    return [dict(sorted(data.get_counts(i if data.shape else None).items())) for i in range(rows)]


def _picks_plugins(backend: BackendV2) -> bool:
    """Whether ``transpile(circuit, backend)`` asks the backend for its own stage plugins."""
    return any(hasattr(backend, name) for name in ("get_translation_stage_plugin",
                                                    "get_scheduling_stage_plugin"))
