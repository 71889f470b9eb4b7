"""Fake IBM devices (qiskit-ibm-runtime snapshots) by name, and their calibration snapshots."""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

from qiskit.circuit import QuantumCircuit
from qiskit.transpiler import Target

from qhybrid.core import BackendNameError

if TYPE_CHECKING:  # qiskit-ibm-runtime is imported when a fake device is asked for (0.6 s)
    from qiskit_ibm_runtime.fake_provider.fake_backend import FakeBackendV2


def _class_name(device: str) -> str:
    return "".join(part.capitalize() for part in device.split("_")) + "V2"


@functools.cache
def fake_device(device: str, *, field: str = "backend") -> FakeBackendV2:
    """The fake backend named ``fake_<name>``, e.g. ``fake_manila``.

    Raises:
        BackendNameError: No such fake device ships with qiskit-ibm-runtime.
    """
    from qiskit_ibm_runtime import fake_provider

    cls = getattr(fake_provider, _class_name(device), None)
    # Only a device class: the module also holds providers (FakeProviderForBackendV2).
    if (not device.startswith("fake_") or not isinstance(cls, type)
            or not issubclass(cls, fake_provider.fake_backend.FakeBackendV2)):
        raise BackendNameError(
            f"unknown fake device '{device}' (examples: fake_manila, fake_lima, fake_guadalupe)",
            field=field,
        )
    return cls()


def calibration_snapshot(target: Target) -> dict[str, object]:
    """A JSON-ready summary of a device's calibration: per-qubit T1, T2, readout error and
    the two-qubit gate errors, as recorded in its target."""
    qubits: list[dict[str, float | None]] = []
    for q in range(target.num_qubits or 0):
        props = target.qubit_properties[q] if target.qubit_properties else None
        measure = target["measure"].get((q,)) if "measure" in target else None
        qubits.append(
            {
                "t1_s": getattr(props, "t1", None),
                "t2_s": getattr(props, "t2", None),
                "readout_error": measure.error if measure is not None else None,
            }
        )
    two_qubit: dict[str, float] = {}
    for name in ("cx", "ecr", "cz"):
        if name in target:
            for qargs, props in target[name].items():
                if props is not None and props.error is not None and math.isfinite(props.error):
                    two_qubit[f"{name}{list(qargs)}"] = props.error
    return {"qubits": qubits, "two_qubit_errors": two_qubit}


def check_width(backend: str, circuit: QuantumCircuit, num_qubits: int | None, *,
                field: str = "backend") -> None:
    """Refuse a circuit wider than the device before anything is submitted.

    Raises:
        BackendNameError: The device has fewer qubits than the circuit.
    """
    if num_qubits is not None and circuit.num_qubits > num_qubits:
        raise BackendNameError(
            f"{backend} has {num_qubits} qubits; the circuit needs {circuit.num_qubits}",
            field=field,
        )
