"""A researcher's own circuit as a problem instance: OpenQASM 3 text or QPY, checked on load.

The file's suffix tells the format apart: ``.qasm`` is OpenQASM 3 (read by ``qiskit.qasm3``
with ``qiskit-qasm3-import``), ``.qpy`` is Qiskit's binary QPY. Either must hold one circuit
of quantum gates only: qhybrid adds the measurements itself, and an estimator needs a unitary
circuit, so measurements, resets and classical bits are refused. QPY is Qiskit's own
serialisation and its loader trusts the lengths a file declares: load QPY files you made.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import struct
from pathlib import Path
from typing import Literal

from openqasm3.parser import QASM3ParsingError
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator
from qiskit import qasm3, qpy
from qiskit.circuit import Gate, QuantumCircuit
from qiskit.exceptions import QiskitError

from qhybrid.core import DataError, read_input_bytes

CircuitFormat = Literal["qasm3", "qpy"]

CIRCUIT_SUFFIXES: dict[str, CircuitFormat] = {".qasm": "qasm3", ".qpy": "qpy"}
"""File suffix -> circuit format."""

MAX_CIRCUIT_QUBITS = 16
"""Widest circuit read: exact diagonalisation of its observables must stay affordable."""

_HARMLESS = frozenset({"barrier", "delay"})  # not gates, but they leave the state unchanged


class CircuitInstance(BaseModel):
    """One parametrised circuit without measurements.

    Attributes:
        format: ``qasm3`` (``source`` is OpenQASM 3 text) or ``qpy`` (``source`` is base64 QPY).
        source: The circuit as the file held it.
    """

    # NaN or infinity is never meaningful in provenance either.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    kind: Literal["circuit"] = "circuit"
    schema_version: Literal[1] = 1
    format: CircuitFormat
    source: str = Field(min_length=1)
    provenance: dict[str, object] = {}
    _circuit: QuantumCircuit = PrivateAttr()

    @model_validator(mode="after")
    def _readable(self) -> CircuitInstance:
        circuit = _parse(self.format, self.source)
        _check(circuit)
        self._circuit = circuit
        return self

    @property
    def num_qubits(self) -> int:
        """The circuit's width."""
        return int(self._circuit.num_qubits)

    def circuit(self) -> QuantumCircuit:
        """A copy of the circuit (callers may change theirs)."""
        return self._circuit.copy()


@functools.lru_cache(maxsize=4)
def _parse(fmt: str, source: str) -> QuantumCircuit:
    """The circuit of ``source``; every reader failure becomes a ValueError with the reason.

    Cached by the text itself: a run reads its circuit file when it starts (the pin check)
    and again at each later step (after checking its md5), and parsing OpenQASM 3 costs more
    than a sweep's own work per 1,000 points. The circuit is shared, never handed out:
    :meth:`CircuitInstance.circuit` returns copies.
    """
    if fmt == "qasm3":
        try:
            return qasm3.loads(source)
        except (QiskitError, QASM3ParsingError) as exc:
            raise ValueError(f"not a readable OpenQASM 3 circuit: {exc or type(exc).__name__}"
                             ) from None
    try:
        data = base64.b64decode(source, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the QPY source is not base64: {exc}") from None
    try:
        circuits = qpy.load(io.BytesIO(data))
    except (QiskitError, struct.error, ValueError, EOFError) as exc:
        raise ValueError(f"not a readable QPY file: {exc or type(exc).__name__}") from None
    if len(circuits) != 1 or not isinstance(circuits[0], QuantumCircuit):
        raise ValueError(f"the QPY file holds {len(circuits)} programs; give exactly one circuit")
    return circuits[0]


def _check(circuit: QuantumCircuit) -> None:
    if circuit.num_qubits == 0:
        raise ValueError("the circuit has no qubits")
    if circuit.num_qubits > MAX_CIRCUIT_QUBITS:
        raise ValueError(f"the circuit has {circuit.num_qubits} qubits; at most "
                         f"{MAX_CIRCUIT_QUBITS} are supported")
    others = sorted({i.operation.name for i in circuit.data
                     if not isinstance(i.operation, Gate) and i.operation.name not in _HARMLESS})
    if others:
        raise ValueError(f"the circuit holds {', '.join(others)}: give it without measurements, "
                         "resets or classical control (qhybrid measures every qubit itself)")
    if circuit.num_clbits:
        raise ValueError(f"the circuit declares {circuit.num_clbits} classical bits; give it "
                         "without them (qhybrid measures every qubit itself)")


def load_circuit(path: Path, *, field: str = "dataset.path") -> CircuitInstance:
    """Read an OpenQASM 3 (``.qasm``) or QPY (``.qpy``) circuit file.

    Raises:
        DataError: Naming ``field``: the file is missing, not a regular file, too large, of
            another suffix, unreadable in its format, or not a circuit of gates only.
    """
    fmt = CIRCUIT_SUFFIXES.get(path.suffix)
    if fmt is None:
        raise DataError(f"{path}: a circuit file ends in {' or '.join(CIRCUIT_SUFFIXES)}",
                        field=field)
    data = read_input_bytes(path, field=field, what="circuit file", error=DataError,
                            missing="; run `dvc repro` (or `dvc pull`) to create it")
    if not data:
        raise DataError(f"{path} is empty", field=field)
    if fmt == "qasm3":
        try:
            source = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path} is not valid UTF-8 (byte {exc.start})", field=field) from None
    else:
        source = base64.b64encode(data).decode("ascii")
    try:
        return CircuitInstance(format=fmt, source=source, provenance={"file": path.name})
    except ValidationError as exc:
        reason = exc.errors(include_url=False)[0]["msg"]
        raise DataError(f"{path}: {reason.removeprefix('Value error, ')}", field=field) from None
