"""The ``qhybrid data`` commands: they generate the problem instances, circuits and
observables that dvc.yaml pins (regular and circulant graphs, molecules' qubit Hamiltonians,
QAOA and GHZ circuits as OpenQASM 3, the GHZ parities) and the instances' metrics for
``dvc metrics show``. Each imports the domain (:mod:`qhybrid.experiments`) only when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qhybrid.core import InvalidInputError, QhybridError
from qhybrid_entrypoints._console import FlagCommand, FlagGroup, fail

data_app = typer.Typer(help="Generate the problem instances that dvc.yaml pins.",
                       no_args_is_help=True, cls=FlagGroup)


@data_app.command("maxcut", cls=FlagCommand)
def data_maxcut(
    out_path: Annotated[Path, typer.Option("--out", help="Output JSON file.")],
    nodes: Annotated[int, typer.Option(min=3, max=24)] = 10,
    degree: Annotated[int, typer.Option(min=1, max=23)] = 3,
    seed: int = 7,
    weighted: bool = False,
    triangle_free: Annotated[bool, typer.Option("--triangle-free/--any")] = True,
) -> None:
    """A random regular graph (deterministic for a seed)."""
    from qhybrid.experiments import random_regular_graph, write_instance

    try:
        graph = random_regular_graph(nodes, degree, seed, triangle_free=triangle_free,
                                     weighted=weighted)
    except ValueError as exc:
        raise fail(InvalidInputError(str(exc)), as_json=False) from exc
    write_instance(graph, out_path)


@data_app.command("circulant", cls=FlagCommand)
def data_circulant(
    out_path: Annotated[Path, typer.Option("--out", help="Output JSON file.")],
    nodes: Annotated[int, typer.Option(min=3, max=24)] = 12,
    offsets: Annotated[str, typer.Option(
        help="Comma-separated offsets k in 1..nodes/2: node i joins i+k mod nodes.")] = "1,6",
) -> None:
    """A circulant graph C_n(offsets), e.g. C_12(1,6): 3-regular, 18 edges."""
    from qhybrid.experiments import circulant_graph, write_instance

    try:
        graph = circulant_graph(nodes, tuple(int(k) for k in offsets.split(",")))
    except ValueError as exc:
        raise fail(InvalidInputError(str(exc), field="--offsets"),
                   as_json=False) from exc
    write_instance(graph, out_path)


@data_app.command("qaoa-circuit", cls=FlagCommand)
def data_qaoa_circuit(
    graph_path: Annotated[Path, typer.Option("--graph", help="A graph instance (JSON).")],
    out_path: Annotated[Path, typer.Option("--out", help="Output OpenQASM 3 file (.qasm).")],
    reps: Annotated[int, typer.Option(min=1, max=8, help="QAOA depth p.")] = 1,
) -> None:
    """A graph's QAOA circuit as OpenQASM 3 (a circuit for `kind: circuit` specs)."""
    from qhybrid.experiments import GraphInstance, load_instance, qaoa_circuit, write_qasm3

    try:
        graph = load_instance(graph_path, field="--graph")
    except QhybridError as exc:
        raise fail(exc, as_json=False) from exc
    if not isinstance(graph, GraphInstance):
        raise fail(InvalidInputError(f"{graph_path} is not a graph instance",
                                     field="--graph"), as_json=False)
    write_qasm3(qaoa_circuit(graph, reps), out_path)


@data_app.command("h2", cls=FlagCommand)
def data_h2(out_path: Annotated[Path, typer.Option("--out", help="Output JSON file.")]) -> None:
    """The H2 (STO-3G, 0.735 Angstrom) two-qubit Hamiltonian."""
    from qhybrid.experiments import h2_hamiltonian, write_instance

    write_instance(h2_hamiltonian(), out_path)


@data_app.command("metrics", cls=FlagCommand)
def data_metrics(
    instances: Annotated[list[Path], typer.Argument(help="Instance files (JSON).")],
    out_path: Annotated[Path, typer.Option("--out", help="Output JSON file.")],
) -> None:
    """Size and exact optimum of each instance, for `dvc metrics show`."""
    from qhybrid.experiments import write_instance_metrics

    try:
        write_instance_metrics(instances, out_path)
    except QhybridError as exc:
        raise fail(exc, as_json=False) from exc


@data_app.command("molecule", cls=FlagCommand)
def data_molecule(
    out_path: Annotated[Path, typer.Option("--out", help="Output JSON file.")],
    bond_length: Annotated[float, typer.Option(
        help="Distance between the two atoms, in Angstrom.")],
    atoms: Annotated[str, typer.Option(help="The two element symbols, comma-separated.")] = "H,H",
    basis: Annotated[str, typer.Option(help="A basis set PySCF knows.")] = "sto-3g",
    charge: int = 0,
    spin: Annotated[int, typer.Option(help="2S = N(alpha) - N(beta); 0 for a singlet.")] = 0,
    mapping: Annotated[str, typer.Option(
        help="parity (two qubits fewer), jordan-wigner or bravyi-kitaev.")] = "parity",
) -> None:
    """A diatomic molecule's qubit Hamiltonian, computed with PySCF and qiskit-nature."""
    from qhybrid.core import InvalidInputError
    from qhybrid.experiments import diatomic_coordinates, molecule_hamiltonian, write_instance

    symbols = tuple(s.strip() for s in atoms.split(","))
    try:
        if len(symbols) != 2:
            raise InvalidInputError(f"--bond-length places two atoms, got {atoms!r}",
                                    field="atoms")
        instance = molecule_hamiltonian(
            symbols, diatomic_coordinates(bond_length), basis=basis, charge=charge, spin=spin,
            mapping=mapping,
        )
    except InvalidInputError as exc:
        option = "--" + (exc.field or "atoms").replace("_", "-")
        raise typer.BadParameter(exc.message, param_hint=f"'{option}'") from exc
    write_instance(instance, out_path)


@data_app.command("ghz", cls=FlagCommand)
def data_ghz(
    out_path: Annotated[Path, typer.Option("--out", help="Output OpenQASM 3 file (.qasm).")],
    qubits: Annotated[int, typer.Option(min=2, max=16)] = 3,
) -> None:
    """The GHZ-state circuit as OpenQASM 3 (a circuit for `kind: circuit` specs)."""
    from qhybrid.experiments import ghz_circuit, write_qasm3

    write_qasm3(ghz_circuit(qubits), out_path)


@data_app.command("ghz-observables", cls=FlagCommand)
def data_ghz_observables(
    out_path: Annotated[Path, typer.Option("--out", help="Output JSON file.")],
    qubits: Annotated[int, typer.Option(min=2, max=16)] = 3,
) -> None:
    """The GHZ state's parities as named observables (a file for `family.observables_path`)."""
    from qhybrid.experiments import ghz_observables, write_observables

    write_observables(ghz_observables(qubits), out_path)
