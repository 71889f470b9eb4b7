"""Noise chosen in the spec: the model qiskit-aer builds from it, what it does to a GHZ state,
how it is refused, and how the backend names it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.noise import NoiseModel, ReadoutError

from backends import open_engine, open_executor
from backends._noise import build_noise_model
from qhybrid.core import (
    BackendNameError,
    NoiseSpec,
    Settings,
    SpecError,
    SubmissionError,
    load_spec,
    spec_from_mapping,
)

REPO = Path(__file__).resolve().parents[2]
P10, P01 = 0.03, 0.08
READOUT = {"readout": {"p1_given_0": P10, "p0_given_1": P01}}
NO_PARAMETERS = np.zeros((1, 0))


def ghz(n: int = 3) -> QuantumCircuit:
    circuit = QuantumCircuit(n)
    circuit.h(0)
    for q in range(n - 1):
        circuit.cx(q, q + 1)
    return circuit


# Mean of the two neighbouring ZZ parities of GHZ-3: 1 ideally.
PARITY = SparsePauliOp(["IZZ", "ZZI"], [0.5, 0.5])


def test_readout_error_lowers_the_ghz_parity_to_its_analytic_value() -> None:
    # A GHZ state is |000> or |111> with equal odds; a ZZ parity survives when both bits are
    # read right or both wrong: (1-2p)^2 for the outcome's flip probability p.
    analytic = ((1 - 2 * P10) ** 2 + (1 - 2 * P01) ** 2) / 2
    assert analytic == pytest.approx(0.7946)
    executor = open_executor("aer", Settings(), transpiler_seed=1, noise=NoiseSpec(**READOUT))
    evs, stds, metadata = executor.estimate_with_stds(ghz(), PARITY, NO_PARAMETERS, seed=3)
    assert 0 < stds[0] < 0.02
    assert abs(evs[0] - analytic) < 3 * stds[0], (evs[0], stds[0])
    assert metadata["mitigation"] is None and metadata["shots"] == 4096


def test_a_readout_list_gives_each_qubit_its_own_error() -> None:
    # Only qubit 2 misreads: the parity of qubits 0,1 is untouched, that of 1,2 drops.
    noise = NoiseSpec(readout_per_qubit=[{"p1_given_0": 0, "p0_given_1": 0}] * 2
                      + [{"p1_given_0": 0.1, "p0_given_1": 0.1}])
    executor = open_executor("aer", Settings(), transpiler_seed=1, noise=noise)
    evs, stds, _ = executor.estimate_observables(
        ghz(), [SparsePauliOp("IZZ"), SparsePauliOp("ZZI")], NO_PARAMETERS, seed=3)
    assert evs[0][0] == 1.0
    assert abs(evs[1][0] - (1 - 2 * 0.1)) < 3 * stds[1][0]


def test_a_zero_depolarising_rate_changes_no_count() -> None:
    noise = NoiseSpec(depolarizing={"one_qubit": {"h": 0.0}, "two_qubit": {"cx": 0.0}})
    measured = ghz()
    measured.measure_all()
    noisy = open_executor("aer", Settings(), transpiler_seed=1, noise=noise).sample(
        measured, NO_PARAMETERS, shots=2000, seed=7)[0]
    # A noisy simulator runs the density-matrix method; the ideal one with that method and
    # the same seed draws the same shots.
    ideal = open_executor("aer:density_matrix", Settings(), transpiler_seed=1).sample(
        measured, NO_PARAMETERS, shots=2000, seed=7)[0]
    assert noisy == ideal and set(noisy) == {"000", "111"}


def test_building_a_section_twice_gives_an_equal_model() -> None:
    section = {**READOUT, "depolarizing": {"one_qubit": {"sx": 0.001}, "two_qubit": {"cx": 0.01}},
               "thermal_relaxation": {"t1_us": 100, "t2_us": 80,
                                      "gate_times_ns": {"sx": 35, "cx": 300}}}
    first = build_noise_model(NoiseSpec.model_validate(section), None)
    again = build_noise_model(NoiseSpec.model_validate_json(json.dumps(section)), None)
    assert first == again
    assert sorted(first.noise_instructions) == ["cx", "measure", "sx"]
    expected = NoiseModel()
    expected.add_all_qubit_readout_error(ReadoutError([[1 - P10, P10], [P01, 1 - P01]]))
    assert (first.to_dict()["errors"][-1]["probabilities"]
            == expected.to_dict()["errors"][0]["probabilities"])


def _gate_errors(model: NoiseModel) -> list[dict]:
    """The model's gate errors without their random ids."""
    return [{k: v for k, v in e.items() if k != "id"} for e in model.to_dict()["errors"]
            if e["type"] != "roerror"]


def test_a_device_model_with_a_readout_override_keeps_the_device_gate_errors() -> None:
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    device = FakeManilaV2()
    model = build_noise_model(NoiseSpec(device="fake_manila", **READOUT), device)
    reference = NoiseModel.from_backend(device)
    assert _gate_errors(model) == _gate_errors(reference) != []
    readout = [e for e in model.to_dict()["errors"] if e["type"] == "roerror"]
    assert len(readout) == 1 and readout[0]["probabilities"] == [[1 - P10, P10], [P01, 1 - P01]]
    assert model == build_noise_model(NoiseSpec(device="fake_manila", **READOUT), device)


def test_fingerprint_describe_and_hash_name_the_section() -> None:
    noise = NoiseSpec(**READOUT)
    canonical = json.dumps(noise.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    engine = open_engine("aer", Settings(), transpiler_seed=1, noise=noise)
    plain = open_engine("aer", Settings(), transpiler_seed=1)
    assert engine.fingerprint == f"{plain.fingerprint}|noise={digest}"
    described = engine.describe()
    assert described["noise_sha256"] == digest and described["noise"] == noise.model_dump(
        mode="json")
    assert "noise" not in plain.describe()


def _hardware(**hardware: object) -> dict:
    data = load_spec(REPO / "specs" / "vqe-h2.yaml").model_dump(mode="json")
    data["gates"]["hardware"] = hardware
    return data


@pytest.mark.parametrize(("hardware", "field", "words"), [
    ({"backend": "aer", "noise": {"readout": {"p1_given_0": 1.5, "p0_given_1": 0}}},
     "gates.hardware.noise.readout.p1_given_0", "less than or equal to 1"),
    ({"backend": "aer", "noise": {"readout_per_qubit": []}},
     "gates.hardware.noise.readout_per_qubit", "at least 1 item"),
    ({"backend": "aer", "noise": {**READOUT, "readout_per_qubit": [READOUT["readout"]]}},
     "gates.hardware.noise", "not both"),
    ({"backend": "aer", "noise": {"thermal_relaxation": {
        "t1_us": 50, "t2_us": 120, "gate_times_ns": {"sx": 35}}}},
     "gates.hardware.noise.thermal_relaxation", "t2_us"),
    ({"backend": "aer", "noise": {"depolarizing": {"one_qubit": {"sx": -0.1}}}},
     "gates.hardware.noise.depolarizing.one_qubit.sx", "greater than or equal to 0"),
    ({"backend": "aer", "noise": {"readout": {"p1_given_0": 0, "p0_given_1": 0}, "extra": 1}},
     "gates.hardware.noise.extra", "Extra inputs"),
    ({"backend": "aer", "noise": {}}, "gates.hardware.noise", "at least one"),
    ({"backend": "ibm:fake_manila", "noise": READOUT}, "gates.hardware", "noise:"),
    ({"backend": "aer-noisy:fake_manila", "noise": {"device": "fake_lima"}}, "gates.hardware",
     "noise.device"),
])
def test_invalid_noise_sections_are_refused_naming_the_field(
        hardware: dict, field: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        spec_from_mapping(_hardware(**hardware))
    assert info.value.field == field, info.value.message
    assert words in info.value.message


@pytest.mark.parametrize(("noise", "error", "field"), [
    ({"depolarizing": {"one_qubit": {"bogus": 0.1}}}, SpecError,
     "gates.hardware.noise.depolarizing.one_qubit.bogus"),
    ({"depolarizing": {"one_qubit": {"cx": 0.1}}}, SpecError,
     "gates.hardware.noise.depolarizing.one_qubit.cx"),
    ({"thermal_relaxation": {"t1_us": 50, "t2_us": 50, "gate_times_ns": {"ccx": 35}}}, SpecError,
     "gates.hardware.noise.thermal_relaxation.gate_times_ns.ccx"),
    ({"device": "fake_nowhere"}, BackendNameError, "gates.hardware.noise.device"),
    ({"device": "fake_manila", "readout_per_qubit": [{"p1_given_0": 0, "p0_given_1": 0}] * 3},
     SpecError, "gates.hardware.noise.readout_per_qubit"),
])
def test_sections_that_cannot_be_built_are_refused_when_the_backend_opens(
        noise: dict, error: type[Exception], field: str) -> None:
    spec = spec_from_mapping(_hardware(backend="aer", noise=noise))
    with pytest.raises(error) as info:
        open_engine("aer", Settings(), transpiler_seed=1, field="gates.hardware.backend",
                    noise=spec.gates.hardware.noise)
    assert info.value.field == field  # type: ignore[attr-defined]


def test_a_readout_list_shorter_than_the_circuit_is_refused() -> None:
    noise = NoiseSpec(readout_per_qubit=[{"p1_given_0": 0, "p0_given_1": 0}] * 2)
    executor = open_executor("aer", Settings(), transpiler_seed=1, noise=noise)
    with pytest.raises(SubmissionError) as info:
        executor.estimate(ghz(), PARITY, NO_PARAMETERS, seed=1)
    assert info.value.field == "noise.readout_per_qubit"
    assert executor.submitter.log.provider_submissions == 0


def test_a_full_section_round_trips_through_json() -> None:
    section = NoiseSpec(device="fake_manila", readout_per_qubit=[READOUT["readout"]] * 5,
                        depolarizing={"one_qubit": {"sx": 0.001}, "two_qubit": {"cx": 0.01}},
                        thermal_relaxation={"t1_us": 100, "t2_us": 200,
                                            "gate_times_ns": {"cx": 300}})
    again = NoiseSpec.model_validate_json(section.model_dump_json())
    assert again == section and again.sha256() == section.sha256()
