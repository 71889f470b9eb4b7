"""A researcher's own circuit (``kind: circuit``): read from OpenQASM 3 or QPY, its named
observables against statevectors and numpy spectra computed here, and the refusals."""

from __future__ import annotations

import functools
import io
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from qiskit import QuantumCircuit, qasm3, qpy
from qiskit.circuit import Parameter
from qiskit.quantum_info import Statevector

from backends import open_executor
from qhybrid.core import (
    CircuitFamily,
    DataError,
    OptimiserSpec,
    Settings,
    SpecError,
    load_spec,
    spec_from_mapping,
)
from qhybrid.experiments import (
    build_workload,
    load_instance,
    measure,
    optimise_and_measure,
    parse_instance,
    run_baselines,
)

PAULI = {"I": np.eye(2), "X": np.array([[0, 1], [1, 0]]), "Y": np.array([[0, -1j], [1j, 0]]),
         "Z": np.diag([1, -1])}


def _matrix(terms: list[tuple[str, float]]) -> np.ndarray:
    """The Pauli sum's matrix, by Kronecker products (leftmost letter: the highest qubit)."""
    return sum(c * functools.reduce(np.kron, [PAULI[p] for p in label]) for label, c in terms)


def _user_circuit() -> QuantumCircuit:
    a, b, c = Parameter("a"), Parameter("b"), Parameter("c")
    circuit = QuantumCircuit(2)
    circuit.ry(a, 0)
    circuit.ry(b, 1)
    circuit.cx(0, 1)
    circuit.rz(c, 1)
    circuit.rx(a, 1)
    return circuit


ENERGY = [("ZZ", 1.0), ("XX", 0.5), ("IZ", -0.3)]
USER_FAMILY = CircuitFamily(observables={"zz": (("ZZ", 1.0),), "xx": (("XX", 1.0),),
                                         "energy": tuple(ENERGY)},
                            objective="energy", direction="minimise")


def _write(tmp_path: Path, circuit: QuantumCircuit, suffix: str) -> Path:
    path = tmp_path / f"user{suffix}"
    if suffix == ".qasm":
        path.write_text(qasm3.dumps(circuit), encoding="utf-8")
    else:
        with path.open("wb") as handle:
            qpy.dump(circuit, handle)
    return path


def test_a_circuit_from_qpy_and_from_openqasm3_gives_identical_results(tmp_path: Path) -> None:
    aer = open_executor("aer", Settings(), transpiler_seed=0)
    trials = {}
    for suffix in (".qasm", ".qpy"):
        workload = build_workload(USER_FAMILY,
                                  load_instance(_write(tmp_path, _user_circuit(), suffix)))
        assert workload.parameter_names == ("a", "b", "c")
        trials[suffix] = optimise_and_measure(
            workload, aer, optimiser=OptimiserSpec(maxiter=15, starts=4), fixed=None, shots=2000,
            optimiser_seed=3, simulator_seed=4)
    qasm, qpy_ = trials[".qasm"], trials[".qpy"]
    assert qasm.counts == qpy_.counts
    assert qasm.metrics == qpy_.metrics
    assert qasm.parameters == qpy_.parameters and qasm.evaluations == qpy_.evaluations > 0
    # Against a statevector of the original circuit at the optimised parameters.
    state = Statevector(_user_circuit().assign_parameters(dict(zip("abc", qasm.parameters,
                                                                   strict=True))))
    expected = float(np.real(state.data.conj() @ _matrix(ENERGY) @ state.data))
    assert qasm.metrics["energy"] == pytest.approx(expected, abs=1e-9)
    zz = float(np.real(state.data.conj() @ _matrix([("ZZ", 1.0)]) @ state.data))
    assert qasm.metrics["zz"] == pytest.approx(zz, abs=1e-9)
    # The counts' value beside the exact one: 2000 shots, a standard error of at most 0.023.
    assert qasm.metrics["zz.sampled"] == pytest.approx(zz, abs=0.1)


@pytest.fixture
def ghz(repo: Path):
    spec = load_spec(repo / "specs" / "ghz.yaml")
    return spec, build_workload(spec.family, load_instance(repo / spec.dataset.path))


def test_the_ghz_parities_are_exactly_one_on_the_ideal_simulator(ghz) -> None:
    spec, workload = ghz
    assert workload.parameter_names == ()
    state = Statevector(workload.ansatz).data
    assert np.allclose(state, np.array([1, 0, 0, 0, 0, 0, 0, 1]) / math.sqrt(2), atol=1e-12)
    trial = optimise_and_measure(
        workload, open_executor("aer", Settings(), transpiler_seed=0), optimiser=spec.optimiser,
        fixed=spec.parameters, shots=spec.shots, optimiser_seed=1, simulator_seed=2)
    # Exact on the ideal simulator, and so are the counts' values: only 000 and 111 occur.
    for parity in ("zz01", "zz12", "zz02", "mean_zz", "xxx"):
        assert abs(trial.metrics[parity] - 1.0) < 1e-9, parity
    for parity in ("zz01", "zz12", "zz02", "mean_zz"):
        assert abs(trial.metrics[f"{parity}.sampled"] - 1.0) < 1e-9, parity
    assert trial.metrics["quality"] == pytest.approx(1.0, abs=1e-9)
    assert set(trial.counts) == {"000", "111"} and sum(trial.counts.values()) == spec.shots
    # Nothing to optimise: the optimiser never ran.
    assert trial.evaluations == trial.batches == 0 and trial.history == ()
    assert trial.parameters == ()


# Non-degenerate spectra: a wrong eigenvalue cannot pass for the extreme one.
MIXED = [("XYZ", 0.7), ("ZIZ", -0.4), ("IXX", 0.25), ("YYI", -0.6), ("III", 0.1), ("XIY", 0.35),
         ("IZI", 0.15)]
DIAGONAL = [("ZZI", 0.5), ("IZZ", -1.5), ("ZIZ", 0.25), ("ZII", 0.3)]


@pytest.mark.parametrize("terms", [MIXED, DIAGONAL], ids=["mixed", "diagonal"])
@pytest.mark.parametrize("direction", ["minimise", "maximise"])
def test_exact_diagonalisation_finds_the_optimal_eigenvalue(ghz, terms, direction) -> None:
    _spec, ghz_workload = ghz
    family = CircuitFamily(observables={"h": tuple(terms)}, objective="h", direction=direction)
    workload = build_workload(family, ghz_workload.instance)
    [baseline] = run_baselines(workload, ["exact-diagonalisation"], seed=0)
    eigenvalues = np.linalg.eigvalsh(_matrix(terms))
    expected = eigenvalues[-1] if direction == "maximise" else eigenvalues[0]
    assert baseline.objective == pytest.approx(expected, abs=1e-10)
    assert baseline.quality == 1.0 and baseline.exact
    assert workload.reference == pytest.approx(expected, abs=1e-10)


def test_quality_places_a_negative_spectrum_between_its_ends(ghz) -> None:
    """Every eigenvalue negative and maximised: value / max eigenvalue would invert the
    scale; quality is (value - low) / (high - low)."""
    _spec, ghz_workload = ghz
    terms = [("III", -2.0), ("ZZI", 0.5), ("XXX", -0.3)]
    family = CircuitFamily(observables={"h": tuple(terms)}, objective="h", direction="maximise")
    workload = build_workload(family, ghz_workload.instance)
    trial = measure(workload, open_executor("aer", Settings(), transpiler_seed=0), (),
                    shots=100, seed=1)
    eigenvalues = np.linalg.eigvalsh(_matrix(terms))
    assert eigenvalues[-1] < 0
    state = Statevector(ghz_workload.ansatz).data
    value = float(np.real(state.conj() @ _matrix(terms) @ state))  # -1.8 for GHZ
    assert trial.metrics["h"] == pytest.approx(value, abs=1e-9)
    expected = (value - eigenvalues[0]) / (eigenvalues[-1] - eigenvalues[0])
    assert trial.metrics["quality"] == pytest.approx(expected, abs=1e-9)
    assert 0 < trial.metrics["quality"] < 1


def _ghz_spec(repo: Path, **family: object) -> dict[str, object]:
    data = yaml.safe_load((repo / "specs" / "ghz.yaml").read_text())
    data["family"] |= family
    return data


@pytest.mark.parametrize(("family", "field", "words"), [
    ({"objective": "mean_xx"}, "family.objective", "not one of the observables"),
    ({"observables": {"quality": [["ZZZ", 1.0]]}, "objective": "quality"},
     "family.observables", "metric of its own"),
    ({"observables": {"h": [["ZQZ", 1.0]]}, "objective": "h"}, "family.observables",
     "I, X, Y, Z"),
    ({"bounds": {"a": [1.0, -1.0]}}, "family.bounds", "not below"),
])
def test_spec_errors_name_the_field(repo: Path, family, field, words) -> None:
    with pytest.raises(SpecError, match=words) as refused:
        spec_from_mapping(_ghz_spec(repo, **family))
    assert refused.value.field == field


@pytest.mark.parametrize(("family", "field", "words"), [
    ({"observables": {"zz": [["ZZ", 1.0]]}, "objective": "zz"}, "family.observables.zz",
     "acts on 2 qubits, the circuit in dataset.path on 3"),
    ({"bounds": {"theta": [0.0, 1.0]}}, "family.bounds", "no parameter theta"),
    ({"observables": {"one": [["III", 2.0]]}, "objective": "one"}, "family.objective",
     "single eigenvalue"),
])
def test_errors_against_the_circuit_name_the_field(repo: Path, ghz, family, field, words) -> None:
    _spec, workload = ghz
    spec = spec_from_mapping(_ghz_spec(repo, **family))
    with pytest.raises(SpecError, match=words) as refused:
        build_workload(spec.family, workload.instance)
    assert refused.value.field == field


HEADER = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\n'
MEASURED = HEADER + "bit[2] c;\nh q[0];\nc = measure q;\n"
CLASSICAL = HEADER + "bit[1] c;\nh q[0];\n"


def _measured_qpy() -> bytes:
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.measure_all()
    buffer = io.BytesIO()
    qpy.dump(circuit, buffer)
    return buffer.getvalue()


BAD_FILES = (
    ("m.qasm", MEASURED, "holds measure"),
    ("c.qasm", CLASSICAL, "1 classical bits"),
    ("m.qpy", _measured_qpy(), "holds measure"),
    ("bad.qasm", "OPENQASM 3.0;\nqubit[2] q;\nfoo q[0];\n", "not a readable OpenQASM 3"),
    ("garbage.qasm", "this is no circuit", "not a readable OpenQASM 3"),
    ("latin1.qasm", b"OPENQASM 3.0; // \xe9\n", "not valid UTF-8"),
    ("bad.qpy", b"QISKIT not really", "not a readable QPY"),
    ("short.qpy", b"\x00\x01", "not a readable QPY"),
    ("empty.qasm", b"", "is empty"),
)


@pytest.mark.parametrize(("name", "content", "words"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_circuit_files_are_data_errors_naming_dataset_path(
        tmp_path: Path, name: str, content: str | bytes, words: str) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=words) as refused:
        load_instance(path)
    assert refused.value.field == "dataset.path"


def test_on_a_noisy_device_parities_come_from_the_counts_with_their_error(ghz) -> None:
    _spec, workload = ghz
    noisy = measure(workload, open_executor("aer-noisy:fake_manila", Settings(),
                                            transpiler_seed=0), (), shots=2000, seed=5)
    assert noisy.metrics["exact"] == 0.0
    # Per-shot values of (Z0Z1 + Z1Z2 + Z0Z2) / 3, computed here from the counts.
    values, weights = [], []
    for key, count in noisy.counts.items():
        z = [1 - 2 * int(key[-1 - q]) for q in range(3)]
        values.append((z[0] * z[1] + z[1] * z[2] + z[0] * z[2]) / 3)
        weights.append(count)
    per_shot = np.repeat(values, weights)
    mean, stderr = per_shot.mean(), per_shot.std(ddof=1) / math.sqrt(per_shot.size)
    assert noisy.metrics["mean_zz"] == pytest.approx(mean, abs=1e-12)
    assert noisy.metrics["mean_zz.stderr"] == pytest.approx(stderr, rel=1e-9)
    # The spectrum of the mean parity runs from -1/3 to 1: quality and its error over 4/3.
    assert noisy.metrics["quality"] == pytest.approx((mean + 1 / 3) / (4 / 3), abs=1e-12)
    assert noisy.metrics["quality.stderr"] == pytest.approx(stderr * 3 / 4, rel=1e-9)
    ideal = measure(workload, open_executor("aer", Settings(), transpiler_seed=0), (),
                    shots=2000, seed=5)
    loss = workload.family.degradation(ideal.metrics, noisy.metrics)
    assert loss.value == pytest.approx(1 - (mean + 1 / 3) / (4 / 3), abs=1e-12)
    assert 0 < loss.stderr == pytest.approx(stderr * 3 / 4, rel=1e-9)  # the ideal side is exact


def test_a_circuit_instance_arrives_as_json_too() -> None:
    """Evaluate jobs and pyfunc predict take an instance as JSON: the circuit's own text."""
    text = qasm3.dumps(_user_circuit())
    instance = parse_instance({"kind": "circuit", "format": "qasm3", "source": text},
                              source="instance", field="instance")
    workload = build_workload(USER_FAMILY, instance)
    assert workload.parameter_names == ("a", "b", "c")
    with pytest.raises(DataError, match="holds measure") as refused:
        parse_instance({"kind": "circuit", "format": "qasm3", "source": MEASURED},
                       source="instance", field="instance")
    assert refused.value.field == "instance"
