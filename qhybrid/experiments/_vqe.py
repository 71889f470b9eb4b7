"""VQE (``kind: vqe``) for a qubit Hamiltonian (a Pauli sum) read from data."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

import numpy as np
from qiskit.circuit.library import efficient_su2, real_amplitudes

from qhybrid.core import BaselineResult, FamilySpec, VqeFamily
from qhybrid.experiments._baselines import exact_ground_energy
from qhybrid.experiments._executor import Counts
from qhybrid.experiments._family import Estimate, Workload, measured, register, stderr_of
from qhybrid.experiments._problems import Instance, PauliSumInstance


def _hamiltonian(instance: Instance) -> PauliSumInstance:
    assert isinstance(instance, PauliSumInstance), instance.kind  # build_workload checked it
    return instance


class Vqe:
    """VQE with a hardware-efficient ansatz; the objective is the energy error against exact
    diagonalisation (Hartree when the data is in Hartree), minimised. Named observable:
    ``energy`` (the Hamiltonian without its constant offset, which analyse adds)."""

    kind = "vqe"
    instance_kind = "pauli-sum"
    axis_label = "energy (Hamiltonian units)"

    def build(self, options: FamilySpec, instance: Instance) -> Workload:
        """``real_amplitudes`` or ``efficient_su2`` on the Hamiltonian's qubits."""
        assert isinstance(options, VqeFamily)
        hamiltonian = _hamiltonian(instance)
        build = real_amplitudes if options.ansatz == "real-amplitudes" else efficient_su2
        ansatz = build(hamiltonian.num_qubits, reps=options.reps,
                       entanglement=options.entanglement)
        names = tuple(p.name.replace("θ", "theta") for p in ansatz.parameters)
        operator = hamiltonian.operator()
        return Workload(
            family=self,
            instance=hamiltonian,
            ansatz=ansatz,
            measured=measured(ansatz),
            observable=operator,
            sign=1.0,
            observables={"energy": operator},
            parameter_names=names,
            to_circuit=np.arange(len(names)),
            bounds=((-math.pi, math.pi),) * len(names),
            objective="energy_error",
            direction="minimise",
            reference=exact_ground_energy(hamiltonian),
        )

    def analyse(
        self, workload: Workload, counts: Counts, estimates: Mapping[str, Estimate]
    ) -> dict[str, float]:
        """The energy (with the constant offset), exact_energy, energy_error and quality, each
        estimate-derived one with its ``.stderr``."""
        exact = workload.reference
        energy = estimates["energy"]
        total = energy.value + _hamiltonian(workload.instance).constant_offset
        error = abs(total - exact)
        return {"energy": total, "energy.stderr": energy.stderr, "exact_energy": exact,
                "energy_error": error, "energy_error.stderr": energy.stderr,
                "quality": 1.0 - error / abs(exact),
                "quality.stderr": energy.stderr / abs(exact)}

    def quality(self, metrics: Mapping[str, float]) -> Estimate:
        """``1 - |E - E_exact| / |E_exact|``."""
        return Estimate(metrics["quality"], stderr_of(metrics, "quality"))

    def degradation(self, ideal: Mapping[str, float], other: Mapping[str, float]) -> Estimate:
        """The energy shift relative to the exact ground energy's magnitude."""
        scale = abs(ideal["exact_energy"])
        spread = float(np.hypot(stderr_of(ideal, "energy"), stderr_of(other, "energy")))
        return Estimate(abs(other["energy"] - ideal["energy"]) / scale, spread / scale)

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
