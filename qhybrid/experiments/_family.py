"""The family protocol: how a circuit family builds its circuits and reads its results.

A family never executes anything. :meth:`Family.build` turns typed spec options and a problem
instance into a :class:`Workload`; :meth:`Family.analyse` turns one execution into typed
metrics. Families register by ``kind``; a new family is one module implementing :class:`Family`
plus its spec model in :mod:`qhybrid.core`.

Named expectation values
    ``Workload.observables`` maps a metric name to the observable whose expectation value *is*
    that metric (QAOA: ``expected_cut`` is the cut operator, ``optimum_probability`` the
    projector onto the optimal cuts; VQE: ``energy``). The runner
    (:func:`qhybrid.experiments.measure`) estimates every one of them and hands the family an
    :class:`Estimate` per name: ``value``, ``stderr`` (its standard error) and ``shots`` (the
    shots behind it; None when the value is exact). Where the values come from is the runner's
    business, not the family's:

    - on an exact executor (ideal ``aer``; see :func:`qhybrid.experiments.is_exact`) the
      estimator's exact value (precision 0), ``stderr`` 0, ``shots`` None;
    - elsewhere, for an observable diagonal in the measured basis (only ``I``/``Z`` terms), the
      sample mean over the counts with its standard error (:func:`sampled_estimate`);
    - elsewhere, for any other observable, the estimator's value and standard error.

    ``Workload.observable`` and ``sign`` stay the optimiser's objective; they need not be one
    of the named observables.

What analyse returns
    :meth:`Family.analyse` derives the family's metrics from the estimates (ratios, offsets,
    errors against the exact reference) and its counts-only metrics (e.g.
    ``best_sampled_cut``) from the counts. For every metric it derives from estimates it also
    returns ``<metric>.stderr``, propagated from the estimates' ``stderr`` (0 for exact
    inputs). The runner then adds, on exact executors, ``<metric>.sampled`` and replaces
    ``<metric>.stderr`` by the sampled value's standard error (by analysing the sampled
    estimates too, when every observable is diagonal), and ``shots``; a family does nothing
    for that. Read a metric's standard error with :func:`stderr_of`: it is 0 for the exact
    values of an exact executor's metrics (marked ``exact`` = 1).

Comparisons carry their error
    :meth:`Family.quality` and :meth:`Family.degradation` return an :class:`Estimate` too, so
    that the gates can allow for sampling noise when they compare a sampled value with a
    limit (see :mod:`qhybrid.experiments._verdicts`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from qhybrid.core import BaselineResult, Direction, FamilySpec, PostProcessingError, SpecError
from qhybrid.experiments._executor import Counts
from qhybrid.experiments._problems import Instance

EXACT = "exact"
"""Metric set to 1.0 when a trial's ``<metric>`` values are exact (an exact executor)."""


@dataclass(frozen=True)
class Estimate:
    """An expectation value (or a quantity derived from some) with its standard error.

    Attributes:
        value: The estimate.
        stderr: Its standard error; 0 when exact.
        shots: The shots behind it; None when it is exact (or the provider did not say, in
            which case ``stderr`` is still the provider's).
    """

    value: float
    stderr: float = 0.0
    shots: int | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.stderr) or self.stderr < 0:
            raise PostProcessingError(f"a standard error must be finite and >= 0, not "
                                      f"{self.stderr}")
        if self.shots is not None and self.shots <= 0:
            raise PostProcessingError(f"an estimate's shots must be positive, not {self.shots}")

    @property
    def exact(self) -> bool:
        """Whether the value carries no sampling error."""
        return self.shots is None and self.stderr == 0.0


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
        observables: Every expectation-valued metric the family reports, by metric name (see
            the module docstring); the runner estimates each and passes them to ``analyse``.
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
    observables: Mapping[str, SparsePauliOp]
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

    def analyse(self, counts: Counts, estimates: Mapping[str, Estimate]) -> dict[str, float]:
        """The family's metrics of one execution (see :meth:`Family.analyse`).

        Args:
            counts: Counts of ``measured``.
            estimates: One estimate per name in ``observables``.

        Raises:
            PostProcessingError: No measured shots, a missing or non-finite estimate, or what
                the family refuses.
        """
        if not counts or sum(counts.values()) <= 0:
            raise PostProcessingError(f"{self.kind}: no measured shots to analyse")
        for name in self.observables:
            estimate = estimates.get(name)
            if estimate is None or not math.isfinite(estimate.value):
                raise PostProcessingError(
                    f"{self.kind}: the estimate of '{name}' is missing or not finite "
                    f"({estimate.value if estimate else None})")
        return self.family.analyse(self, counts, estimates)

    def sampled_estimates(self, counts: Counts) -> dict[str, Estimate] | None:
        """Every named observable's sample mean over ``counts`` (:func:`sampled_estimate`);
        None when one of them is not diagonal in the measured basis."""
        sampled = {name: sampled_estimate(counts, op) for name, op in self.observables.items()}
        if any(e is None for e in sampled.values()):
            return None
        return {name: e for name, e in sampled.items() if e is not None}


class Family(Protocol):
    """One circuit family.

    Attributes:
        kind: The spec's ``family.kind``.
        instance_kind: The ``kind`` of problem instance it reads.
        axis_label: What the objective's values are, for plots (e.g. ``expected cut``).
    """

    kind: str
    instance_kind: str
    axis_label: str

    def build(self, options: FamilySpec, instance: Instance) -> Workload:
        """Circuits and observable of the family on ``instance``, configured by ``options``."""
        ...

    def analyse(
        self, workload: Workload, counts: Counts, estimates: Mapping[str, Estimate]
    ) -> dict[str, float]:
        """Typed metrics of one execution, each estimate-derived one with its ``.stderr``.

        ``counts`` holds at least one shot and ``estimates`` a finite estimate per name in
        ``workload.observables`` (:meth:`Workload.analyse` checks).

        Raises:
            PostProcessingError: What the family refuses.
        """
        ...

    def quality(self, metrics: Mapping[str, float]) -> Estimate:
        """The objective on a 0..1 scale comparable with classical baselines, with its
        standard error (:func:`stderr_of`)."""
        ...

    def degradation(self, ideal: Mapping[str, float], other: Mapping[str, float]) -> Estimate:
        """Relative loss of the objective from ``ideal`` to ``other``, with its standard error
        (both sides' :func:`stderr_of`, propagated)."""
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


def is_diagonal(observable: SparsePauliOp) -> bool:
    """Whether ``observable`` has only ``I`` and ``Z`` terms (diagonal in the measured basis)."""
    return not bool(observable.paulis.x.any())


def sampled_estimate(counts: Counts, observable: SparsePauliOp) -> Estimate | None:
    """The sample mean of a diagonal observable over ``counts``, with its standard error.

    Each shot's outcome x gives the eigenvalue ``sum_k c_k (-1)^(z_k . x)``; the estimate is
    their mean and its standard error ``s / sqrt(shots)``, ``s`` the sample standard deviation
    (0 for a single shot, where no spread can be seen).

    Returns:
        None when ``observable`` is not diagonal (the counts cannot estimate it).

    Raises:
        PostProcessingError: No shots, or a non-Hermitian observable.
    """
    if not is_diagonal(observable):
        return None
    shots = sum(counts.values())
    if shots <= 0:
        raise PostProcessingError("no measured shots to estimate from")
    coeffs = np.asarray(observable.coeffs)
    if np.any(np.abs(coeffs.imag) > 1e-12):
        raise PostProcessingError("a diagonal observable with complex coefficients is not "
                                  "Hermitian")
    bits, weights = counts_to_bits(counts, observable.num_qubits)
    parity = (bits @ observable.paulis.z.T.astype(int)) % 2
    eigenvalues = (1 - 2 * parity) @ coeffs.real
    mean = float(weights @ eigenvalues / shots)
    if shots == 1:
        return Estimate(mean, 0.0, 1)
    variance = float(weights @ (eigenvalues - mean) ** 2 / (shots - 1))
    return Estimate(mean, math.sqrt(variance / shots), int(shots))


def stderr_of(metrics: Mapping[str, float], name: str) -> float:
    """The standard error of ``metrics[name]``: 0 when the metrics are exact (``exact`` = 1),
    else ``metrics["<name>.stderr"]`` (0 when absent: a metric not derived from samples)."""
    if metrics.get(EXACT) == 1.0:
        return 0.0
    return float(metrics.get(f"{name}.stderr", 0.0))

