"""Readout mitigation (mthree) and ZNE (qiskit-ibm-runtime in local mode) on noisy Aer, on a
GHZ state whose noisy and ideal parities are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp, Statevector

from backends import open_executor
from qhybrid.core import MitigationSpec, NoiseSpec, Settings, SubmissionError

P10, P01 = 0.03, 0.08
READOUT = NoiseSpec(readout={"p1_given_0": P10, "p0_given_1": P01})
NO_PARAMETERS = np.zeros((1, 0))
ZZ = [SparsePauliOp("IZZ"), SparsePauliOp("ZZI"), SparsePauliOp(["IZZ", "ZZI"], [0.5, 0.5])]


def ghz() -> QuantumCircuit:
    circuit = QuantumCircuit(3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    return circuit


def test_readout_mitigation_restores_every_ghz_parity() -> None:
    ideal = [Statevector(ghz()).expectation_value(o).real for o in ZZ]
    assert ideal == pytest.approx([1, 1, 1])
    noisy = ((1 - 2 * P10) ** 2 + (1 - 2 * P01) ** 2) / 2  # a parity survives two misreads
    executor = open_executor("aer", Settings(), transpiler_seed=1, noise=READOUT)
    raw, raw_stds, _ = executor.estimate_observables(ghz(), ZZ, NO_PARAMETERS, seed=5)
    mitigated, stds, metadata = executor.estimate_observables(
        ghz(), ZZ, NO_PARAMETERS, seed=5, mitigation=MitigationSpec(readout=True))
    for k in range(len(ZZ)):  # one call, every observable mitigated alike
        assert abs(raw[k][0] - noisy) < 3 * raw_stds[k][0], (k, raw[k], raw_stds[k])
        assert abs(mitigated[k][0] - ideal[k]) < 3 * stds[k][0], (k, mitigated[k], stds[k])
        assert abs(mitigated[k][0] - ideal[k]) < abs(raw[k][0] - ideal[k])
    applied = metadata["mitigation"]
    assert isinstance(applied, dict) and str(applied["readout"]).startswith("mthree ")


def test_readout_mitigation_of_x_terms_and_an_identity() -> None:
    # <XXX> of GHZ is 1: measured in the X basis, corrected like the Z parities.
    observable = SparsePauliOp(["XXX", "III"], [1.0, 0.5])
    exact = Statevector(ghz()).expectation_value(observable).real
    executor = open_executor("aer", Settings(), transpiler_seed=1, noise=READOUT)
    evs, stds, _ = executor.estimate_with_stds(ghz(), observable, NO_PARAMETERS, seed=5,
                                               mitigation=MitigationSpec(readout=True))
    assert abs(evs[0] - exact) < 3 * stds[0], (evs, stds, exact)


def test_mitigated_estimates_replay_with_the_same_seed() -> None:
    spec = MitigationSpec(readout=True)
    first = open_executor("aer", Settings(), transpiler_seed=1, noise=READOUT).estimate_observables(
        ghz(), ZZ, NO_PARAMETERS, seed=9, mitigation=spec)[0]
    again = open_executor("aer", Settings(), transpiler_seed=1, noise=READOUT).estimate_observables(
        ghz(), ZZ, NO_PARAMETERS, seed=9, mitigation=spec)[0]
    assert [float(e[0]) for e in first] == [float(e[0]) for e in again]


def test_zne_moves_a_depolarised_parity_towards_the_ideal() -> None:
    noise = NoiseSpec(depolarizing={"two_qubit": {"cx": 0.05}})
    executor = open_executor("aer", Settings(), transpiler_seed=1, noise=noise)
    parity = ZZ[2]
    raw = executor.estimate(ghz(), parity, NO_PARAMETERS, seed=2)[0]
    zne, _, metadata = executor.estimate_with_stds(
        ghz(), parity, NO_PARAMETERS, seed=2,
        mitigation=MitigationSpec(zne=True, zne_extrapolator="exponential"))
    assert raw < 0.95  # two noisy CNOTs lose several percent of the parity
    assert abs(zne[0] - 1) < abs(raw - 1) / 2
    applied = metadata["mitigation"]
    assert isinstance(applied, dict) and applied["resilience"]["zne_mitigation"] is True


@pytest.mark.parametrize(("mitigation", "field"), [
    (MitigationSpec(readout=True, twirling=True), "mitigation.twirling"),
    (MitigationSpec(zne=True, dynamical_decoupling=True), "mitigation.dynamical_decoupling"),
])
def test_techniques_aer_cannot_apply_are_refused_naming_them(
        mitigation: MitigationSpec, field: str) -> None:
    executor = open_executor("aer", Settings(), transpiler_seed=1, noise=READOUT)
    with pytest.raises(SubmissionError) as info:
        executor.estimate_with_stds(ghz(), ZZ[0], NO_PARAMETERS, seed=1, mitigation=mitigation)
    assert info.value.field == field
    assert executor.submitter.log.provider_submissions == 0


def test_mitigation_on_a_noiseless_simulator_is_refused() -> None:
    executor = open_executor("aer", Settings(), transpiler_seed=1)
    with pytest.raises(SubmissionError) as info:
        executor.estimate_with_stds(ghz(), ZZ[0], NO_PARAMETERS, seed=1,
                                    mitigation=MitigationSpec(readout=True))
    assert info.value.field == "mitigation"
    assert executor.submitter.log.provider_submissions == 0


def test_readout_mitigation_reads_each_qubit_of_its_own_term() -> None:
    # |011> (qubits 0 and 1 flipped): each single-qubit Z and a mixed pair tell the bits apart.
    circuit = QuantumCircuit(3)
    circuit.x([0, 1])
    # The last two terms commute qubit-wise, so they share one measurement of qubits 0 and 2.
    observables = [SparsePauliOp(label) for label in ("IIZ", "IZI", "ZII", "ZIZ", "YYI")] + [
        SparsePauliOp(["IIZ", "ZII"], [1.0, 0.3])]
    exact = [Statevector(circuit).expectation_value(o).real for o in observables]
    assert exact == pytest.approx([-1, -1, 1, -1, 0, -0.7])
    executor = open_executor("aer", Settings(), transpiler_seed=1, noise=READOUT)
    evs, stds, _ = executor.estimate_observables(circuit, observables, NO_PARAMETERS, seed=4,
                                                 mitigation=MitigationSpec(readout=True))
    for k, value in enumerate(exact):
        assert abs(evs[k][0] - value) < 3 * stds[k][0] + 1e-9, (observables[k], evs[k], stds[k])
