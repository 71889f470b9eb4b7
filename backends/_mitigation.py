"""Estimates on a noisy Aer simulator, raw or mitigated, by sampling as hardware does.

Aer's own Estimator computes exact expectation values, so it never sees readout errors; a
noisy Aer backend therefore estimates by sampling, like a device. Mitigation wraps that
sampling executor, the backend stays one class (docs/mitigation.md has the measured choice):

- readout only: mthree (M3) corrects the sampled counts of each measurement basis with
  calibrations taken on the same seeded simulator;
- zne (with or without readout): qiskit-ibm-runtime's executor-based Estimator in local mode
  on the same simulator folds gates and extrapolates (readout, if asked too, is its TREX);
- none: the same runtime Estimator with every technique off (the raw arm).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from qiskit.circuit import ClassicalRegister, QuantumCircuit
from qiskit.primitives import PrimitiveResult
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import SamplerV2

from backends._isa import counts_by_row
from backends._protocol import Pub, Submission, SubmissionResult
from qhybrid.core import ExecutionError, MitigationSpec, SubmissionError

if TYPE_CHECKING:  # mthree and qiskit-ibm-runtime (1.5 s) are imported by the arms that use them
    import mthree

Prepare = Callable[[QuantumCircuit], QuantumCircuit]

# Without a requested precision, estimates use IBM's default: 1/64, i.e. 4096 shots a basis.
DEFAULT_PRECISION = 1 / 64


def shots_for(precision: float | None) -> int:
    """Shots per measurement basis for a target standard error (as qiskit-ibm-runtime)."""
    return math.ceil(1 / (precision or DEFAULT_PRECISION) ** 2)


def sampled_estimates(
    submission: Submission, simulator: AerSimulator, prepare: Prepare, *, name: str,
    sampler_options: dict[str, object],
) -> SubmissionResult:
    """Estimate every PUB of ``submission`` by sampling ``simulator``, mitigated as it asks.

    Args:
        submission: An estimate submission; its PUBs may hold different observables of the
            same circuit (one call for every observable an experiment estimates).
        simulator: A fresh noisy simulator (its noise model and, for a device, its target);
            readout mitigation seeds it for its calibrations.
        prepare: Transpiles a logical circuit as the backend executes it.
        name: The backend's name, for errors.
        sampler_options: Aer backend options of the sampler (the noise model, the method).

    Raises:
        SubmissionError: PUBs or options the primitives refuse as formed.
        ExecutionError: The simulation or the mitigation failed.
    """
    m = submission.mitigation
    if m is not None and m.readout and not m.zne:
        return _readout_mthree(submission, simulator, prepare, name=name,
                               sampler_options=sampler_options)
    return _runtime_estimates(submission, simulator, prepare, m, name=name)


def _runtime_estimates(
    submission: Submission, simulator: AerSimulator, prepare: Prepare,
    mitigation: MitigationSpec | None, *, name: str,
) -> SubmissionResult:
    from qiskit_ibm_runtime.exceptions import IBMInputValueError, IBMRuntimeError
    from qiskit_ibm_runtime.executor_estimator import Estimator

    from backends._ibm import _applied, mitigation_options

    options: dict[str, object] = {
        "simulator": {"seed_simulator": submission.seed},
        "default_precision": submission.precision or DEFAULT_PRECISION,
        **mitigation_options(mitigation),
    }
    pubs = []
    for pub in submission.pubs:
        isa = prepare(pub.circuit)
        observable = pub.observable
        assert observable is not None, "an estimate PUB carries its observable"
        mapped = observable.apply_layout(isa.layout) if isa.layout is not None else observable
        pubs.append((isa, mapped, np.asarray(pub.points)))
    with warnings.catch_warnings():
        # Local mode reports zero per-noise-factor errors, so runtime's ZNE fit warns that it
        # falls back to unweighted; intervals come from seeded repeats instead.
        warnings.filterwarnings("ignore", message="No positive, finite standard errors",
                                category=UserWarning)
        try:
            results: PrimitiveResult = Estimator(mode=simulator, options=options).run(
                pubs).result()
        except (IBMInputValueError, ValueError) as exc:
            raise SubmissionError(f"{name}: {exc}") from exc
        except IBMRuntimeError as exc:
            raise ExecutionError(f"{name}: {exc}", provider_status="ERROR") from exc
    applied = _applied(results.metadata)
    return SubmissionResult(
        evs=[np.asarray(r.data.evs, dtype=float).reshape(-1) for r in results],
        stds=[np.asarray(r.data.stds, dtype=float).reshape(-1) for r in results],
        metadata={"simulator": "aer", "estimator": "qiskit-ibm-runtime local mode",
                  "mitigation": applied, "shots": shots_for(submission.precision)},
    )


def _readout_mthree(
    submission: Submission, simulator: AerSimulator, prepare: Prepare, *, name: str,
    sampler_options: dict[str, object],
) -> SubmissionResult:
    import mthree

    shots = shots_for(submission.precision)
    sampler = SamplerV2(seed=submission.seed, options={"backend_options": sampler_options})
    # Calibrations on the same simulator, seeded: a replay corrects with the same matrices.
    simulator.set_options(seed_simulator=submission.seed)
    m3 = mthree.M3Mitigation(simulator)
    evs: list[np.ndarray] = []
    stds: list[np.ndarray] = []
    try:
        for pub in submission.pubs:
            ev, std = _pub_readout(pub, sampler, m3, prepare, shots)
            evs.append(ev)
            stds.append(std)
    except mthree.exceptions.M3Error as exc:
        raise ExecutionError(f"{name}: readout mitigation failed: {exc}",
                             provider_status="ERROR") from exc
    return SubmissionResult(evs=evs, stds=stds, metadata={
        "simulator": "aer", "estimator": "sampled counts",
        "mitigation": {"readout": f"mthree {mthree.__version__}", "shots": shots},
        "shots": shots})


def _pub_readout(
    pub: Pub, sampler: SamplerV2, m3: mthree.M3Mitigation, prepare: Prepare, shots: int,
) -> tuple[np.ndarray, np.ndarray]:
    """One PUB: every qubit-wise commuting group of its observable measured in its basis, the
    counts corrected by M3, each Pauli term read from the corrected distribution."""
    observable = pub.observable
    assert observable is not None, "an estimate PUB carries its observable"
    points = np.asarray(pub.points)
    rows = pub.rows
    ev = np.zeros(rows)
    variance = np.zeros(rows)
    for group in observable.group_commuting(qubit_wise=True):
        labels = group.paulis.to_labels()
        coeffs = np.real(group.coeffs)
        support = sorted({q for label in labels for q, p in enumerate(reversed(label))
                          if p != "I"})
        if not support:  # the identity term
            ev += float(coeffs.sum())
            continue
        isa = prepare(_in_basis(pub.circuit, labels, support))
        mapping = _measured_qubits(isa)
        if not _calibrated(m3, mapping):
            m3.cals_from_system(mapping, shots=shots, async_cal=False)
        for row, counts in enumerate(counts_by_row(sampler.run([(isa, points)],
                                                               shots=shots).result()[0])):
            quasi = m3.apply_correction(counts, mapping, return_mitigation_overhead=True)
            for label, coeff in zip(labels, coeffs, strict=True):
                ev[row] += coeff * quasi.expval(_z_string(label, support))
            # Terms of a group share their samples: their errors add, groups' in quadrature.
            variance[row] += (float(np.abs(coeffs).sum()) * quasi.stddev()) ** 2
    return ev, np.sqrt(variance)


def _measured_qubits(isa: QuantumCircuit) -> dict[int, int]:
    """Classical bit -> physical qubit of each measurement of a transpiled circuit (mthree's
    own helper iterates instructions as tuples, which qiskit deprecates)."""
    return {isa.find_bit(i.clbits[0]).index: isa.find_bit(i.qubits[0]).index
            for i in isa.data if i.operation.name == "measure"}


def _calibrated(m3: mthree.M3Mitigation, mapping: dict[int, int]) -> bool:
    cals = getattr(m3, "single_qubit_cals", None)
    return cals is not None and all(cals[q] is not None for q in mapping.values())


def _in_basis(circuit: QuantumCircuit, labels: Sequence[str], support: list[int]) -> QuantumCircuit:
    """``circuit`` rotated into the group's basis and measured on its support, in order."""
    measured = circuit.copy()
    register = ClassicalRegister(len(support), "meas")
    measured.add_register(register)
    for bit, qubit in enumerate(support):
        pauli = next(label[-1 - qubit] for label in labels if label[-1 - qubit] != "I")
        if pauli == "X":
            measured.h(qubit)
        elif pauli == "Y":
            measured.sdg(qubit)
            measured.h(qubit)
        measured.measure(qubit, register[bit])
    return measured


def _z_string(label: str, support: list[int]) -> str:
    """The term as an M3 operator over the measured bits (bit 0 rightmost)."""
    return "".join("I" if label[-1 - qubit] == "I" else "Z" for qubit in reversed(support))

