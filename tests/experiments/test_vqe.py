"""VQE for H2 (STO-3G, 0.735 Angstrom) against the published FCI energy."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends import open_executor
from qhybrid.core import Settings, load_spec
from qhybrid.experiments import (
    build_workload,
    exact_ground_energy,
    load_instance,
    optimise_and_measure,
)

FCI_H2_0735 = -1.13730604  # Hartree, total energy including nuclear repulsion
CHEMICAL_ACCURACY = 1.6e-3  # Hartree


def test_exact_diagonalisation_matches_published_fci(repo: Path) -> None:
    h2 = load_instance(repo / "data" / "h2_sto3g_0735.json")
    assert exact_ground_energy(h2) == pytest.approx(FCI_H2_0735, abs=1e-7)


def test_vqe_reaches_chemical_accuracy(repo: Path) -> None:
    spec = load_spec(repo / "specs" / "vqe-h2.yaml")
    h2 = load_instance(repo / spec.dataset.path)
    workload = build_workload(spec.family, h2)
    execution = optimise_and_measure(
        workload, open_executor("aer", Settings(), transpiler_seed=0), optimiser=spec.optimiser,
        fixed=spec.parameters, shots=spec.shots, optimiser_seed=5, simulator_seed=6)
    assert abs(execution.metrics["energy"] - FCI_H2_0735) < CHEMICAL_ACCURACY
    assert execution.metrics["energy_error"] < CHEMICAL_ACCURACY
    # The convergence history is the optimiser's objective and never ends above its start.
    assert execution.history[-1] <= execution.history[0]
