"""A researcher's own circuit (``kind: circuit``) with named observables.

The dataset is the circuit file (OpenQASM 3 or QPY, see :mod:`._circuit_file`); the spec's
``family`` section names Pauli-sum observables, the one the optimiser and the gates work on
(``objective``), its direction and the parameters' bounds. A circuit without parameters is a
fixed experiment: the optimiser has nothing to do and the gates judge the circuit as it is.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from qiskit.quantum_info import SparsePauliOp

from qhybrid.core import (
    BaselineResult,
    CircuitFamily,
    Direction,
    FamilySpec,
    PostProcessingError,
    SpecError,
)
from qhybrid.experiments._baselines import spectrum_bounds
from qhybrid.experiments._circuit_file import CircuitInstance
from qhybrid.experiments._executor import Counts
from qhybrid.experiments._family import Workload, counts_to_bits, measured, register
from qhybrid.experiments._problems import Instance

DEFAULT_BOUNDS = (-math.pi, math.pi)
"""Bounds of a parameter the spec does not bound."""


@dataclass(frozen=True)
class _Measurement:
    """What one spec measures on the circuit: its observables and how the objective scores."""

    observables: Mapping[str, SparsePauliOp]
    objective: str
    direction: Direction
    low: float  # the objective's lowest eigenvalue
    high: float  # and its highest

    @property
    def optimum(self) -> float:
        return self.high if self.direction == "maximise" else self.low

    def quality(self, value: float) -> float:
        """``value`` on 0..1 between the objective's worst and best eigenvalue."""
        gained = value - self.low if self.direction == "maximise" else self.high - value
        return gained / (self.high - self.low)


def _circuit(instance: Instance) -> CircuitInstance:
    assert isinstance(instance, CircuitInstance), instance.kind  # build_workload checked it
    return instance


def _diagonal_value(observable: SparsePauliOp, bits: np.ndarray, weights: np.ndarray) -> float:
    """The expectation of an I/Z-only observable from measured bits (column i: qubit i)."""
    parity = (bits @ observable.paulis.z.T.astype(int)) % 2
    values = (1 - 2 * parity) @ np.real(np.asarray(observable.coeffs))
    return float(values @ weights / weights.sum())


class UserCircuit:
    """A circuit read from data, scored by one of its named observables.

    Metrics: the expectation of every observable by its name, ``optimum`` (the objective's
    best eigenvalue) and ``quality``. Quality puts the objective between the worst and best
    eigenvalue of its observable, ``(value - low) / (high - low)`` when maximised and
    ``(high - value) / (high - low)`` when minimised, so it is 1 at the optimum and 0 at the
    opposite end whatever the signs of the eigenvalues. (A plain ``value / high`` would be
    negative, or flip its meaning, for an observable whose eigenvalues are negative; for a
    spectrum from 0 to ``high``, such as a cut, the two agree.) Only estimation noise takes it
    outside 0..1.

    The registered object builds workloads; each workload holds one configured by its spec,
    which analyses and scores.
    """

    kind = "circuit"
    instance_kind = "circuit"
    needs_energy = True
    axis_label = "expectation value of the objective"

    def __init__(self, measurement: _Measurement | None = None) -> None:
        self._measurement = measurement

    @property
    def measurement(self) -> _Measurement:
        assert self._measurement is not None, "only a workload's family analyses"
        return self._measurement

    def build(self, options: FamilySpec, instance: Instance) -> Workload:
        """The circuit as read, measured on every qubit, and the spec's observables.

        Raises:
            SpecError: An observable as wide as another circuit (``family.observables.NAME``),
                a bound on a parameter the circuit does not have (``family.bounds``), or an
                objective with a single eigenvalue (``family.objective``).
        """
        assert isinstance(options, CircuitFamily)
        data = _circuit(instance)
        ansatz = data.circuit()
        observables: dict[str, SparsePauliOp] = {}
        for name, terms in options.observables.items():
            width = len(terms[0][0])
            if width != ansatz.num_qubits:
                raise SpecError(f"observable '{name}' acts on {width} qubits, the circuit in "
                                f"dataset.path on {ansatz.num_qubits}",
                                field=f"family.observables.{name}")
            observables[name] = SparsePauliOp.from_list(list(terms)).simplify()
        names = tuple(p.name for p in ansatz.parameters)
        unknown = sorted(set(options.bounds) - set(names))
        if unknown:
            raise SpecError(f"the circuit has no parameter {', '.join(unknown)}; its parameters: "
                            f"{', '.join(names) or 'none'}", field="family.bounds")
        low, high = spectrum_bounds(observables[options.objective])
        if math.isclose(low, high, rel_tol=1e-12, abs_tol=1e-12):
            raise SpecError(f"observable '{options.objective}' has the single eigenvalue {low}: "
                            "there is nothing to optimise or score", field="family.objective")
        measurement = _Measurement(observables=observables, objective=options.objective,
                                   direction=options.direction, low=low, high=high)
        return Workload(
            family=UserCircuit(measurement),
            instance=data,
            ansatz=ansatz,
            measured=measured(ansatz),
            observable=observables[options.objective],
            sign=-1.0 if options.direction == "maximise" else 1.0,
            parameter_names=names,
            to_circuit=np.arange(len(names)),
            bounds=tuple(options.bounds.get(n, DEFAULT_BOUNDS) for n in names),
            objective=options.objective,
            direction=options.direction,
            reference=measurement.optimum,
        )

    def analyse(self, workload: Workload, counts: Counts, energy: float | None) -> dict[str, float]:
        """The objective's estimated expectation (``energy``); every other observable that is
        diagonal (I and Z only) from the counts; ``optimum`` and ``quality``."""
        if energy is None or not math.isfinite(energy):
            raise PostProcessingError(
                f"{self.kind}: the estimated objective is missing or not finite ({energy})")
        measurement = self.measurement
        bits, weights = counts_to_bits(counts, workload.ansatz.num_qubits)
        metrics = {name: _diagonal_value(op, bits, weights)
                   for name, op in measurement.observables.items()
                   if name != measurement.objective and not op.paulis.x.any()}
        metrics[measurement.objective] = energy
        return metrics | {"optimum": measurement.optimum, "quality": measurement.quality(energy)}

    def quality(self, metrics: Mapping[str, float]) -> float:
        """The objective between its worst (0) and best (1) eigenvalue."""
        return metrics["quality"]

    def degradation(self, ideal: Mapping[str, float], other: Mapping[str, float]) -> float:
        """The objective's shift as a fraction of its observable's spectral width."""
        return abs(ideal["quality"] - other["quality"])

    def baselines(
        self, instance: Instance, solvers: Sequence[str], seed: int
    ) -> list[BaselineResult]:
        """``exact-diagonalisation``: the objective's best eigenvalue (quality 1 by definition)."""
        measurement = self.measurement
        results: list[BaselineResult] = []
        for solver in solvers:
            if solver == "exact-diagonalisation":
                start = time.perf_counter()
                low, high = spectrum_bounds(measurement.observables[measurement.objective])
                optimum = high if measurement.direction == "maximise" else low
                results.append(BaselineResult(solver=solver, objective=optimum, quality=1.0,
                                              seconds=time.perf_counter() - start, exact=True))
        return results


USER_CIRCUIT = register(UserCircuit())
