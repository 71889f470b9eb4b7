"""Molecular qubit Hamiltonians computed with PySCF through qiskit-nature.

``qhybrid data molecule`` calls :func:`molecule_hamiltonian`, e.g.
``qhybrid data molecule --atoms H,H --bond-length 0.7414 --out F``. PySCF runs a Hartree-Fock
calculation in the chosen basis, qiskit-nature maps the electronic Hamiltonian to qubits, and
PySCF's full configuration interaction (FCI) energy is recorded beside it as the reference the
qubit Hamiltonian must reproduce. PySCF and qiskit-nature are imported inside the functions, so
importing :mod:`qhybrid.experiments` stays fast.

Coefficients are rounded to :data:`COEFFICIENT_DECIMALS` decimals and sorted by Pauli label, so
the same arguments and package versions give the same bytes (and the same DVC md5).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from importlib.metadata import version

from qhybrid.core import InvalidInputError
from qhybrid.experiments._problems import PauliSumInstance

MAPPINGS = ("parity", "jordan-wigner", "bravyi-kitaev")
"""Fermion-to-qubit mappings; ``parity`` also drops the two qubits that hold each spin's
particle-number parity."""

COEFFICIENT_DECIMALS = 10
"""Decimals kept of every coefficient and energy (Hartree): 1e-10 Ha is far below chemical
accuracy (1.6e-3 Ha) and above the SCF's last-digit noise, so re-runs give the same bytes."""

_MAX_QUBITS = 16  # PauliSumInstance's limit: a dense 2^16 matrix is still diagonalisable.
_SCF_CONV_TOL = 1e-12  # tighter than PySCF's 1e-9, so the rounded digits are converged ones


def diatomic_coordinates(bond_length: float) -> tuple[tuple[float, float, float], ...]:
    """Two atoms on the z axis, the first at the origin (Angstrom).

    Raises:
        InvalidInputError: ``bond_length`` is not a positive number (field ``bond_length``).
    """
    if not (bond_length > 0 and math.isfinite(bond_length)):
        raise InvalidInputError(f"must be a positive distance in Angstrom, got {bond_length}",
                                field="bond_length")
    return ((0.0, 0.0, 0.0), (0.0, 0.0, float(bond_length)))


def _formula(atoms: Sequence[str]) -> str:
    counts: dict[str, int] = {}
    for symbol in atoms:
        counts[symbol] = counts.get(symbol, 0) + 1
    return "".join(s + (str(n) if n > 1 else "") for s, n in counts.items())


def _check_inputs(
    atoms: Sequence[str], coordinates: Sequence[tuple[float, float, float]], basis: str,
    charge: int, spin: int,
) -> None:
    """Validate before any SCF runs."""
    from pyscf import gto
    from pyscf.data import elements
    from pyscf.lib.exceptions import BasisNotFoundError

    if not atoms:
        raise InvalidInputError("no atoms given", field="atoms")
    for symbol in atoms:
        # ELEMENTS[0] is PySCF's ghost atom "X", not a chemical element.
        if symbol not in elements.ELEMENTS[1:]:
            raise InvalidInputError(f"'{symbol}' is not a chemical element symbol (e.g. H, Li)",
                                    field="atoms")
    for symbol in sorted(set(atoms)):
        with warnings.catch_warnings():
            # PySCF warns, then raises, for a basis it lacks; the error below says it all.
            warnings.simplefilter("ignore", UserWarning)
            try:
                gto.basis.load(basis, symbol)
            except BasisNotFoundError as exc:
                raise InvalidInputError(f"PySCF has no basis '{basis}' for {symbol}",
                                        field="basis") from exc
    electrons = sum(elements.charge(s) for s in atoms) - charge
    if electrons < 1:
        raise InvalidInputError(f"leaves {electrons} electrons", field="charge")
    if spin < 0 or spin > electrons or (electrons - spin) % 2:
        raise InvalidInputError(
            f"2S = {spin} is impossible with {electrons} electrons (0 <= 2S <= N, N - 2S even)",
            field="spin")
    if len(coordinates) != len(atoms) or any(len(p) != 3 for p in coordinates):
        raise InvalidInputError(f"{len(atoms)} atoms need {len(atoms)} (x, y, z) positions",
                                field="coordinates")
    if not all(math.isfinite(c) for p in coordinates for c in p):
        raise InvalidInputError("positions must be finite numbers", field="coordinates")
    for i, j in itertools.combinations(range(len(atoms)), 2):
        if math.dist(coordinates[i], coordinates[j]) < 1e-3:
            raise InvalidInputError(f"atoms {i} and {j} are less than 0.001 Angstrom apart",
                                    field="coordinates")


def _fci_energy(atom: str, basis: str, charge: int, spin: int) -> tuple[float, float]:
    """PySCF's Hartree-Fock and FCI total energies (Hartree), independent of qiskit-nature."""
    from pyscf import fci, gto, scf

    mol = gto.M(atom=atom, basis=basis, charge=charge, spin=spin, unit="Angstrom", verbose=0)
    mf = scf.RHF(mol) if spin == 0 else scf.ROHF(mol)
    mf.conv_tol = _SCF_CONV_TOL
    mf.kernel()
    e_fci = fci.FCI(mf).kernel()[0]
    return float(mf.e_tot), float(e_fci)


def molecule_hamiltonian(
    atoms: Sequence[str],
    coordinates: Sequence[tuple[float, float, float]],
    *,
    basis: str = "sto-3g",
    charge: int = 0,
    spin: int = 0,
    mapping: str = "parity",
) -> PauliSumInstance:
    """The electronic Hamiltonian of a molecule as a qubit operator, with its provenance.

    The nuclear repulsion is the instance's ``constant_offset``. The operator acts on more
    than the molecule's own electron count: ``parity`` keeps each spin's particle-number
    parity, Jordan-Wigner and Bravyi-Kitaev keep every count. For H2 and LiH the lowest
    eigenvalue plus the offset is still the FCI energy in this basis; for others (H2+ with
    ``parity``: H2- lies lower) it may belong to an ion, so ``fci_energy_hartree`` in the
    provenance is the reference to compare with.

    Args:
        atoms: Element symbols, e.g. ``("H", "H")``.
        coordinates: One (x, y, z) per atom, in Angstrom.
        basis: A basis set PySCF knows, e.g. ``sto-3g``, ``6-31g``.
        charge: Net charge of the molecule.
        spin: 2S = N(alpha) - N(beta), PySCF's convention (0 for a singlet).
        mapping: The fermion-to-qubit mapping, one of :data:`MAPPINGS`.

    Raises:
        InvalidInputError: An argument no calculation can use; ``field`` names it (``atoms``,
            ``coordinates``, ``basis``, ``charge``, ``spin``, ``mapping``).
    """
    from qiskit_nature.second_q.drivers import MethodType, PySCFDriver
    from qiskit_nature.second_q.mappers import (
        BravyiKitaevMapper,
        JordanWignerMapper,
        ParityMapper,
        QubitMapper,
    )
    from qiskit_nature.units import DistanceUnit

    basis = basis.strip().lower()
    if mapping not in MAPPINGS:
        raise InvalidInputError(f"'{mapping}' is not one of {', '.join(MAPPINGS)}",
                                field="mapping")
    _check_inputs(atoms, coordinates, basis, charge, spin)
    # -0.0 and 0.0 are one position; "+ 0.0" keeps the JSON from showing both.
    xyz = tuple(tuple(round(float(c), COEFFICIENT_DECIMALS) + 0.0 for c in p) for p in coordinates)
    atom = "; ".join(f"{s} {x!r} {y!r} {z!r}" for s, (x, y, z) in zip(atoms, xyz, strict=True))

    driver = PySCFDriver(
        atom=atom, unit=DistanceUnit.ANGSTROM, charge=charge, spin=spin, basis=basis,
        method=MethodType.RHF if spin == 0 else MethodType.ROHF, conv_tol=_SCF_CONV_TOL,
    )
    problem = driver.run()
    # PySCFDriver always fills both; qiskit-nature types them optional for other drivers.
    assert problem.num_spatial_orbitals is not None and problem.num_particles is not None
    qubits = 2 * problem.num_spatial_orbitals - (2 if mapping == "parity" else 0)
    if qubits > _MAX_QUBITS:
        raise InvalidInputError(
            f"'{basis}' gives {qubits} qubits for {_formula(atoms)}; at most {_MAX_QUBITS}",
            field="basis")
    mapper: QubitMapper
    if mapping == "parity":
        mapper = ParityMapper(num_particles=problem.num_particles)
    elif mapping == "jordan-wigner":
        mapper = JordanWignerMapper()
    else:
        mapper = BravyiKitaevMapper()
    op = mapper.map(problem.hamiltonian.second_q_op()).simplify(atol=1e-12)
    terms = sorted(
        (label, round(float(coeff.real), COEFFICIENT_DECIMALS))
        for label, coeff in op.to_list()
        if round(float(coeff.real), COEFFICIENT_DECIMALS) != 0.0
    )
    # The electronic Hamiltonian is real symmetric, so every Pauli coefficient is real.
    assert all(abs(coeff.imag) < 1e-10 for coeff in op.coeffs), "complex Pauli coefficient"
    nuclear_repulsion = float(problem.nuclear_repulsion_energy or 0.0)
    e_hf, e_fci = _fci_energy(atom, basis, charge, spin)

    def rounded(value: float) -> float:
        return round(value, COEFFICIENT_DECIMALS) + 0.0

    provenance: dict[str, object] = {
        "generator": "pyscf+qiskit-nature",
        "molecule": _formula(atoms),
        "geometry": {"atoms": list(atoms), "coordinates": [list(p) for p in xyz],
                     "unit": "angstrom"},
        "basis": basis,
        "charge": charge,
        "spin": spin,
        "num_particles": list(problem.num_particles),
        "num_spatial_orbitals": problem.num_spatial_orbitals,
        "mapping": mapping,
        "qubit_reduction": "two-qubit (particle-number parity)" if mapping == "parity" else "none",
        "nuclear_repulsion_hartree": rounded(nuclear_repulsion),
        "hf_energy_hartree": rounded(e_hf),
        "fci_energy_hartree": rounded(e_fci),
        "coefficient_decimals": COEFFICIENT_DECIMALS,
        "units": "hartree",
        "versions": {p: version(p) for p in ("pyscf", "qiskit", "qiskit-nature")},
    }
    if len(atoms) == 2:
        provenance["bond_length_angstrom"] = rounded(math.dist(*xyz))
    return PauliSumInstance(
        num_qubits=op.num_qubits,
        terms=tuple(terms),
        constant_offset=rounded(nuclear_repulsion),
        provenance=provenance,
    )
