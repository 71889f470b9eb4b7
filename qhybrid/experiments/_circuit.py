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

from qhybrid.core import BaselineResult, CircuitFamily, Direction, FamilySpec, SpecError
from qhybrid.experiments._baselines import spectrum_bounds
from qhybrid.experiments._circuit_file import CircuitInstance
from qhybrid.experiments._executor import Counts
from qhybrid.experiments._family import Estimate, Workload, measured, register, stderr_of
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


class UserCircuit:
    """A circuit read from data, scored by one of its named observables.

    Named observables: the spec's, each a metric of its own (with its ``.stderr``); beside
    them ``optimum`` (the objective's best eigenvalue) and ``quality``.

    Quality puts the objective between the worst and the best eigenvalue of its observable:
    ``(value - low) / (high - low)`` when maximised, ``(high - value) / (high - low)`` when
    minimised, so it is 1 at the optimum and 0 at the opposite end whatever the signs of the
    eigenvalues. A plain ``value / high`` would turn negative, or run backwards, for an
    observable whose eigenvalues are negative; for a spectrum from 0 up, such as a cut's, the
    two agree. Only estimation noise takes it outside 0..1.

    The registered object builds workloads; each workload holds one configured by its spec
    (its observables and objective), which analyses, scores and runs the baseline.
    """

    kind = "circuit"
    instance_kind = "circuit"
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
            SpecError: Observables still in their file (``family.observables_path``: the
                application layer reads it, :meth:`CircuitFamily.with_observables`), an
                observable not as wide as the circuit (``family.observables.NAME``), a bound on
                a parameter the circuit does not have (``family.bounds``), or an objective with
                a single eigenvalue (``family.objective``).
        """
        assert isinstance(options, CircuitFamily)
        if options.observables is None:
            raise SpecError(f"the observables of {options.observables_path} were not read; "
                            "read the file and pass CircuitFamily.with_observables",
                            field="family.observables_path")
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
            observables=observables,
            parameter_names=names,
            to_circuit=np.arange(len(names)),
            bounds=tuple(options.bounds.get(n, DEFAULT_BOUNDS) for n in names),
            objective=options.objective,
            direction=options.direction,
            reference=measurement.optimum,
        )

    def analyse(
        self, workload: Workload, counts: Counts, estimates: Mapping[str, Estimate]
    ) -> dict[str, float]:
        """Every observable's expectation by its name, ``optimum`` and ``quality``, each
        estimate-derived one with its ``.stderr``."""
        measurement = self.measurement
        metrics: dict[str, float] = {}
        for name in measurement.observables:
            metrics |= {name: estimates[name].value, f"{name}.stderr": estimates[name].stderr}
        objective = estimates[measurement.objective]
        return metrics | {
            "optimum": measurement.optimum,
            "quality": measurement.quality(objective.value),
            "quality.stderr": objective.stderr / (measurement.high - measurement.low),
        }

    def quality(self, metrics: Mapping[str, float]) -> Estimate:
        """The objective between its worst (0) and best (1) eigenvalue."""
        return Estimate(metrics["quality"], stderr_of(metrics, "quality"))

    def degradation(self, ideal: Mapping[str, float], other: Mapping[str, float]) -> Estimate:
        """The objective's shift as a fraction of its observable's spectral width (the shift
        of ``quality``), with both sides' standard errors combined."""
        spread = float(np.hypot(stderr_of(ideal, "quality"), stderr_of(other, "quality")))
        return Estimate(abs(ideal["quality"] - other["quality"]), spread)

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
