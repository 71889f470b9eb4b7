"""VQE (``kind: vqe``) for a qubit Hamiltonian (a Pauli sum) read from data."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

import numpy as np
from qiskit.circuit.library import efficient_su2, real_amplitudes

from qhybrid.core import BaselineResult, FamilySpec, PostProcessingError, VqeFamily
from qhybrid.experiments._baselines import exact_ground_energy
from qhybrid.experiments._executor import Counts
from qhybrid.experiments._family import Workload, measured, register
from qhybrid.experiments._problems import Instance, PauliSumInstance


def _hamiltonian(instance: Instance) -> PauliSumInstance:
    assert isinstance(instance, PauliSumInstance), instance.kind  # build_workload checked it
    return instance


class Vqe:
    """VQE with a hardware-efficient ansatz; the objective is the energy error against exact
    diagonalisation (Hartree when the data is in Hartree), minimised."""

    kind = "vqe"
    instance_kind = "pauli-sum"
    needs_energy = True
    axis_label = "energy (Hamiltonian units)"

    def build(self, options: FamilySpec, instance: Instance) -> Workload:
        """``real_amplitudes`` or ``efficient_su2`` on the Hamiltonian's qubits."""
        assert isinstance(options, VqeFamily)
        hamiltonian = _hamiltonian(instance)
        build = real_amplitudes if options.ansatz == "real-amplitudes" else efficient_su2
        ansatz = build(hamiltonian.num_qubits, reps=options.reps,
                       entanglement=options.entanglement)
        names = tuple(p.name.replace("θ", "theta") for p in ansatz.parameters)
        return Workload(
            family=self,
            instance=hamiltonian,
            ansatz=ansatz,
            measured=measured(ansatz),
            observable=hamiltonian.operator(),
            sign=1.0,
            parameter_names=names,
            to_circuit=np.arange(len(names)),
            bounds=((-math.pi, math.pi),) * len(names),
            objective="energy_error",
            direction="minimise",
            reference=exact_ground_energy(hamiltonian),
        )

    def analyse(self, workload: Workload, counts: Counts, energy: float | None) -> dict[str, float]:
        """Metrics: energy (with the constant offset), exact_energy, energy_error and quality."""
        if energy is None or not math.isfinite(energy):
            raise PostProcessingError(
                f"{self.kind}: the estimated energy is missing or not finite ({energy})")
        exact = workload.reference
        total = energy + _hamiltonian(workload.instance).constant_offset
        error = abs(total - exact)
        return {"energy": total, "exact_energy": exact, "energy_error": error,
                "quality": 1.0 - error / abs(exact)}

    def quality(self, metrics: Mapping[str, float]) -> float:
        """``1 - |E - E_exact| / |E_exact|``."""
        return metrics["quality"]

    def degradation(self, ideal: Mapping[str, float], other: Mapping[str, float]) -> float:
        """The energy shift relative to the exact ground energy's magnitude."""
        return abs(other["energy"] - ideal["energy"]) / abs(ideal["exact_energy"])

    def baselines(
        self, instance: Instance, solvers: Sequence[str], seed: int
    ) -> list[BaselineResult]:
        """``exact-diagonalisation`` (quality 1 by definition)."""
        results: list[BaselineResult] = []
        for solver in solvers:
            if solver == "exact-diagonalisation":
                start = time.perf_counter()
                energy = exact_ground_energy(_hamiltonian(instance))
                results.append(BaselineResult(solver=solver, objective=energy, quality=1.0,
                                              seconds=time.perf_counter() - start, exact=True))
        return results


VQE = register(Vqe())
