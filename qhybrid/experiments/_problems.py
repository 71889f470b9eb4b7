"""Problem instances read from data: weighted graphs, qubit Hamiltonians and circuits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from qiskit.quantum_info import SparsePauliOp

from qhybrid.core import DataError, parse_json, read_input
from qhybrid.experiments._circuit_file import CIRCUIT_SUFFIXES, CircuitInstance, load_circuit


class _Model(BaseModel):
    # NaN or infinity is never a meaningful weight, coefficient or offset.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class GraphInstance(_Model):
    """An undirected weighted graph; nodes are 0..num_nodes-1."""

    kind: Literal["graph"] = "graph"
    schema_version: Literal[1] = 1
    num_nodes: int = Field(ge=2, le=24)
    edges: tuple[tuple[int, int, float], ...] = Field(min_length=1)
    provenance: dict[str, object] = {}

    @model_validator(mode="after")
    def _edges_valid(self) -> GraphInstance:
        seen: set[tuple[int, int]] = set()
        for i, j, _w in self.edges:
            if not (0 <= i < self.num_nodes and 0 <= j < self.num_nodes) or i == j:
                raise ValueError(f"edge ({i}, {j}) is not between two distinct nodes")
            key = (min(i, j), max(i, j))
            if key in seen:
                raise ValueError(f"edge {key} appears twice")
            seen.add(key)
        return self

    @property
    def weights(self) -> np.ndarray:
        """Symmetric weight matrix."""
        w = np.zeros((self.num_nodes, self.num_nodes))
        for i, j, weight in self.edges:
            w[i, j] = w[j, i] = weight
        return w


class PauliSumInstance(_Model):
    """A qubit Hamiltonian as a list of (Pauli label, real coefficient)."""

    kind: Literal["pauli-sum"] = "pauli-sum"
    schema_version: Literal[1] = 1
    num_qubits: int = Field(ge=1, le=16)
    terms: tuple[tuple[str, float], ...] = Field(min_length=1)
    constant_offset: float = Field(default=0.0, description="E.g. nuclear repulsion, in Hartree.")
    provenance: dict[str, object] = {}

    @model_validator(mode="after")
    def _labels_valid(self) -> PauliSumInstance:
        for label, _c in self.terms:
            if len(label) != self.num_qubits or set(label) - set("IXYZ"):
                raise ValueError(f"Pauli label '{label}' is not {self.num_qubits} of I, X, Y, Z")
        return self

    def operator(self) -> SparsePauliOp:
        """The Hamiltonian without the constant offset (Qiskit little-endian labels)."""
        return SparsePauliOp.from_list([(label, coeff) for label, coeff in self.terms])


Instance = Annotated[GraphInstance | PauliSumInstance | CircuitInstance,
                     Field(discriminator="kind")]
"""Any problem instance, told apart by ``kind``."""


class _Envelope(_Model):
    instance: Instance


def load_instance(path: Path, *, field: str = "dataset.path") -> Instance:
    """Read a problem instance from JSON, or a circuit from a ``.qasm`` or ``.qpy`` file.

    Raises:
        DataError: The file is missing, not a regular file, too large, not UTF-8 JSON, or
            not a valid instance (see :func:`load_circuit` for circuit files).
    """
    if path.suffix in CIRCUIT_SUFFIXES:
        return load_circuit(path, field=field)
    text = read_input(path, field=field, what="dataset", error=DataError,
                      missing="; run `dvc repro` (or `dvc pull`) to create it")
    raw = parse_json(text, source=str(path), field=field, error=DataError)
    return parse_instance(raw, source=str(path), field=field)


def parse_instance(raw: object, *, source: str, field: str) -> Instance:
    """Validate a parsed document as a problem instance.

    Raises:
        DataError: Naming ``source`` and the instance's offending field.
    """
    try:
        return _Envelope.model_validate({"instance": raw}).instance
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "<instance>"
        raise DataError(f"{source}: {where}: {first['msg']}", field=field) from exc
