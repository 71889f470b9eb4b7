"""Molecular Hamiltonians computed with PySCF + qiskit-nature, against published FCI energies.

References (total energies in Hartree, H2 in STO-3G, bond length in Angstrom):

- 0.7 and 0.7414: OpenFermion's bundled molecular data, ``fci_energy`` of
  src/openfermion/testing/data/H2_sto-3g_singlet_0.7.hdf5 and ..._0.7414.hdf5
  (quantumlib/OpenFermion, commit 4de9bf5793f040a41518a606296271751b956649), computed by
  OpenFermion's own electronic-structure run, not by the code under test.
- LiH at 1.45: OpenFermion's H1-Li1_sto-3g_singlet_1.45.hdf5, same commit.
- 0.735: qiskit-nature's tutorial docs/tutorials/01_electronic_structure.ipynb
  (qiskit-community/qiskit-nature, commit 478b26e1992d66582cf15bcb1c90df702a3b8f97), "Total
  ground state energy (Hartree): -1.137306035753" for ``H 0 0 0; H 0 0 0.735``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from qiskit.quantum_info import SparsePauliOp
from typer.testing import CliRunner

from qhybrid.core import InvalidInputError
from qhybrid.experiments import (
    PauliSumInstance,
    diatomic_coordinates,
    h2_hamiltonian,
    load_instance,
    molecule_hamiltonian,
    write_instance,
)
from qhybrid_entrypoints.cli import app

PUBLISHED_FCI = {
    0.7: -1.1361894542708848,  # OpenFermion H2_sto-3g_singlet_0.7.hdf5
    0.735: -1.137306035753,  # qiskit-nature tutorial 01_electronic_structure
    0.7414: -1.137270174625328,  # OpenFermion H2_sto-3g_singlet_0.7414.hdf5
}
LIH_145_FCI = -7.8809823148256966  # OpenFermion H1-Li1_sto-3g_singlet_1.45.hdf5
BOHR_IN_ANGSTROM = 0.529177210903  # CODATA 2018


def _h2(bond_length: float, **options: object) -> PauliSumInstance:
    return molecule_hamiltonian(("H", "H"), diatomic_coordinates(bond_length), **options)


def _spectrum(instance: PauliSumInstance) -> np.ndarray:
    """Every eigenvalue plus the offset, by dense diagonalisation in the test."""
    matrix = SparsePauliOp.from_list(list(instance.terms)).to_matrix()
    # A molecular Hamiltonian is real symmetric in the computational basis.
    assert np.abs(matrix.imag).max() < 1e-12
    return np.linalg.eigvalsh(matrix.real) + instance.constant_offset


@pytest.mark.parametrize("bond_length", sorted(PUBLISHED_FCI))
def test_lowest_eigenvalue_is_the_published_fci_energy(bond_length: float) -> None:
    h2 = _h2(bond_length)
    assert h2.num_qubits == 2  # four spin orbitals, less the parity mapping's two
    assert _spectrum(h2)[0] == pytest.approx(PUBLISHED_FCI[bond_length], abs=1e-6)
    # The FCI energy PySCF computed, recorded beside the Hamiltonian, is the same number.
    assert h2.provenance["fci_energy_hartree"] == pytest.approx(PUBLISHED_FCI[bond_length],
                                                                abs=1e-6)


@pytest.mark.parametrize("mapping", ["jordan-wigner", "bravyi-kitaev"])
def test_every_mapping_keeps_the_ground_state(mapping: str) -> None:
    h2 = _h2(0.7414, mapping=mapping)
    assert h2.num_qubits == 4  # no reduction: every spin orbital is a qubit
    assert h2.provenance["qubit_reduction"] == "none"
    # The full Fock space holds H2+ and H2- too; for H2 the neutral singlet is still lowest.
    assert _spectrum(h2)[0] == pytest.approx(PUBLISHED_FCI[0.7414], abs=1e-6)


def test_provenance_records_how_the_hamiltonian_was_made() -> None:
    h2 = _h2(0.7414)
    p = h2.provenance
    assert p["geometry"] == {"atoms": ["H", "H"], "coordinates": [[0.0, 0.0, 0.0],
                                                                   [0.0, 0.0, 0.7414]],
                             "unit": "angstrom"}
    assert (p["molecule"], p["basis"], p["charge"], p["spin"]) == ("H2", "sto-3g", 0, 0)
    assert (p["mapping"], p["qubit_reduction"]) == ("parity", "two-qubit (particle-number parity)")
    assert p["bond_length_angstrom"] == 0.7414
    assert p["num_particles"] == [1, 1]
    assert p["versions"] == {name: version(name) for name in ("pyscf", "qiskit",
                                                              "qiskit-nature")}
    # Nuclear repulsion of two protons, 1 / R in atomic units, is the constant offset.
    repulsion = 1 / (0.7414 / BOHR_IN_ANGSTROM)
    assert h2.constant_offset == pytest.approx(repulsion, abs=1e-8)
    assert p["nuclear_repulsion_hartree"] == h2.constant_offset
    assert p["hf_energy_hartree"] > p["fci_energy_hartree"]  # variational: HF lies above


def test_hand_entered_and_computed_hamiltonians_have_one_spectrum() -> None:
    hand, computed = h2_hamiltonian(), _h2(0.735)
    assert computed.constant_offset == pytest.approx(hand.constant_offset, abs=1e-9)
    np.testing.assert_allclose(_spectrum(computed), _spectrum(hand), atol=1e-6)


def test_output_is_canonical_and_loads_as_a_pauli_sum(tmp_path: Path, repo: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    write_instance(_h2(0.7414), first)
    write_instance(_h2(0.7414), second)
    assert first.read_bytes() == second.read_bytes()
    raw = json.loads(first.read_text())
    assert [label for label, _ in raw["terms"]] == sorted(label for label, _ in raw["terms"])
    assert all(round(c, 10) == c for _, c in raw["terms"])
    loaded = load_instance(first)
    assert isinstance(loaded, PauliSumInstance)
    assert loaded.provenance["fci_energy_hartree"] == raw["provenance"]["fci_energy_hartree"]
    # The hand-entered file, with its older, smaller provenance, still loads.
    assert isinstance(load_instance(repo / "data" / "h2_sto3g_0735.json"), PauliSumInstance)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--bond-length", "-0.5"], "--bond-length"),
        (["--bond-length", "0"], "--bond-length"),
        (["--bond-length", "0.7", "--basis", "no-such-basis"], "--basis"),
        (["--bond-length", "0.7", "--atoms", "H,Qq"], "--atoms"),
        (["--bond-length", "0.7", "--atoms", "H"], "--atoms"),
        (["--bond-length", "0.7", "--spin", "1"], "--spin"),
        (["--bond-length", "0.7", "--charge", "2"], "--charge"),
        (["--bond-length", "0.7", "--mapping", "qubit-magic"], "--mapping"),
    ],
)
def test_bad_arguments_exit_2_naming_the_option(tmp_path: Path, args: list[str],
                                                option: str) -> None:
    out = tmp_path / "h2.json"
    result = CliRunner().invoke(app, ["data", "molecule", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in " ".join(result.output.split())
    assert not out.exists()


def test_the_command_computes_lih_to_its_published_fci_energy(tmp_path: Path) -> None:
    out = tmp_path / "lih.json"
    result = CliRunner().invoke(app, ["data", "molecule", "--atoms", "Li,H", "--bond-length",
                                      "1.45", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lih = load_instance(out)
    assert isinstance(lih, PauliSumInstance)
    # LiH in STO-3G: 6 spatial orbitals, 12 spin orbitals, 10 qubits after the reduction.
    assert (lih.num_qubits, lih.provenance["molecule"]) == (10, "LiH")
    assert lih.provenance["num_particles"] == [2, 2]
    # The reduced space keeps each spin's particle-number parity; the neutral molecule's
    # ground state is the lowest state in it.
    assert _spectrum(lih)[0] == pytest.approx(LIH_145_FCI, abs=1e-6)


def test_domain_errors_name_their_field() -> None:
    with pytest.raises(InvalidInputError) as info:
        diatomic_coordinates(float("inf"))
    assert info.value.field == "bond_length"
    with pytest.raises(InvalidInputError) as info:
        molecule_hamiltonian(("H", "H"), ((0.0, 0.0, 0.0),))
    assert info.value.field == "coordinates"
    with pytest.raises(InvalidInputError) as info:
        molecule_hamiltonian(("H", "H"), ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)))
    assert info.value.field == "coordinates"


def test_importing_the_domain_loads_no_chemistry_package() -> None:
    # PySCF and qiskit-nature load inside molecule_hamiltonian: every other command stays fast.
    probe = ("import sys, qhybrid.experiments; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'pyscf', 'qiskit_nature'}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "[]"
