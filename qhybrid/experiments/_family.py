"""The family protocol: how a circuit family builds its circuits and reads its results.

A family never executes anything. :meth:`Family.build` turns typed spec options and a problem
instance into a :class:`Workload`; :meth:`Family.analyse` turns counts (and an energy, for a
family that estimates one) into typed metrics. Families register by ``kind``; a new family is
one module implementing :class:`Family` plus its spec model in :mod:`qhybrid.core`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from qhybrid.core import BaselineResult, Direction, FamilySpec, PostProcessingError, SpecError
from qhybrid.experiments._executor import Counts
from qhybrid.experiments._problems import Instance


@dataclass(frozen=True)
class Workload:
    """What to run for one experiment on one instance.

    Attributes:
        family: The family that built it (and analyses its results).
        instance: The problem instance.
        ansatz: Parametrised circuit without measurements.
        measured: ``ansatz`` followed by a measurement of every qubit.
        observable: Its expectation is what the optimiser works on.
        sign: +1 to minimise ``observable``, -1 to maximise it.
        parameter_names: The family's documented parameter order.
        to_circuit: Column permutation: ``points[:, to_circuit]`` is in circuit order.
        bounds: Box bounds per parameter, in family order.
        objective: Name of the primary metric gates judge.
        direction: Whether larger or smaller ``objective`` is better.
        reference: The instance's exact optimum (maximum cut, or ground energy with its
            offset), computed once here so that every analysis can score against it.
    """

    family: Family
    instance: Instance
    ansatz: QuantumCircuit
    measured: QuantumCircuit
    observable: SparsePauliOp
    sign: float
    parameter_names: tuple[str, ...]
    to_circuit: np.ndarray
    bounds: tuple[tuple[float, float], ...]
    objective: str
    direction: Direction
    reference: float

    @property
    def kind(self) -> str:
        """The family's kind, e.g. ``qaoa-maxcut``."""
        return self.family.kind

    def circuit_points(self, points: np.ndarray | Sequence[float]) -> np.ndarray:
        """Reorder (n, k) points from family order to ``circuit.parameters`` order.

        Raises:
            SpecError: The points do not have one value per parameter.
        """
        array = np.atleast_2d(np.asarray(points, dtype=float))
        if array.shape[1] != len(self.parameter_names):
            raise SpecError(
                f"expected {len(self.parameter_names)} values "
                f"({', '.join(self.parameter_names)}), got {array.shape[1]}",
                field="parameters",
            )
        return array[:, self.to_circuit]

    def analyse(self, counts: Counts, energy: float | None = None) -> dict[str, float]:
        """The family's metrics of one execution (see :meth:`Family.analyse`).

        Raises:
            PostProcessingError: No measured shots, or what the family refuses.
        """
        if not counts or sum(counts.values()) <= 0:
            raise PostProcessingError(f"{self.kind}: no measured shots to analyse")
        return self.family.analyse(self, counts, energy)


class Family(Protocol):
    """One circuit family.

    Attributes:
        kind: The spec's ``family.kind``.
        instance_kind: The ``kind`` of problem instance it reads.
        needs_energy: Whether :meth:`analyse` needs the estimated observable as ``energy``.
        axis_label: What the objective's values are, for plots (e.g. ``expected cut``).
    """

    kind: str
    instance_kind: str
    needs_energy: bool
    axis_label: str

    def build(self, options: FamilySpec, instance: Instance) -> Workload:
        """Circuits and observable of the family on ``instance``, configured by ``options``."""
        ...

    def analyse(self, workload: Workload, counts: Counts, energy: float | None) -> dict[str, float]:
        """Typed metrics of one execution; ``counts`` holds at least one shot
        (:meth:`Workload.analyse` checks).

        Raises:
            PostProcessingError: A missing or non-finite energy, for a family that needs one.
        """
        ...

    def quality(self, metrics: Mapping[str, float]) -> float:
        """The objective on a 0..1 scale comparable with classical baselines."""
        ...

    def degradation(self, ideal: Mapping[str, float], other: Mapping[str, float]) -> float:
        """Relative loss of the objective from ``ideal`` to ``other``."""
        ...

    def baselines(
        self, instance: Instance, solvers: Sequence[str], seed: int
    ) -> list[BaselineResult]:
        """Run the named classical solvers on ``instance``, timed, quality on the family's scale."""
        ...


_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Make ``family`` available by its kind.

    Raises:
        ValueError: Another family already holds that kind.
    """
    if family.kind in _FAMILIES and _FAMILIES[family.kind] is not family:
        raise ValueError(f"family kind '{family.kind}' is registered twice")
    _FAMILIES[family.kind] = family
    return family


def family_for(kind: str) -> Family:
    """The family registered for ``kind``.

    Raises:
        SpecError: No family has that kind.
    """
    try:
        return _FAMILIES[kind]
    except KeyError:
        raise SpecError(f"no circuit family '{kind}'; known: {', '.join(sorted(_FAMILIES))}",
                        field="family.kind") from None


def families() -> tuple[str, ...]:
    """The registered kinds, sorted."""
    return tuple(sorted(_FAMILIES))


def build_workload(options: FamilySpec, instance: Instance) -> Workload:
    """Build the circuits and observable of the family ``options`` names, on ``instance``.

    Raises:
        SpecError: The data does not fit the family (e.g. a Hamiltonian for MaxCut).
    """
    family = family_for(options.kind)
    if instance.kind != family.instance_kind:
        raise SpecError(f"{family.kind} needs a {family.instance_kind} dataset, not "
                        f"{instance.kind}", field="dataset.path")
    return family.build(options, instance)


def run_baselines(workload: Workload, solvers: Sequence[str], seed: int) -> list[BaselineResult]:
    """The family's classical solvers on the workload's instance (see :meth:`Family.baselines`)."""
    return workload.family.baselines(workload.instance, solvers, seed)


def counts_to_bits(counts: Counts, num_qubits: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts as a (m, n) 0/1 array (column i is qubit i) and an (m,) array of counts."""
    keys = list(counts)
    bits = np.array([[int(key[-1 - i]) for i in range(num_qubits)] for key in keys], dtype=int)
    return bits, np.array([counts[key] for key in keys], dtype=float)


def measured(ansatz: QuantumCircuit) -> QuantumCircuit:
    """``ansatz`` followed by a measurement of every qubit."""
    circuit = ansatz.copy()
    circuit.measure_all()
    return circuit
