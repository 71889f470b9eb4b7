"""Noise models from a spec's ``noise`` section, built with qiskit-aer's noise module.

The model is a pure function of the section (and of the fake device it names, whose
calibration ships with qiskit-ibm-runtime): building it twice gives equal models, so a replay
of a recorded run simulates the same noise. Its identity is the SHA-256 of the section's
canonical JSON (:meth:`~qhybrid.core.NoiseSpec.sha256`).
"""

from __future__ import annotations

from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.providers import BackendV2
from qiskit_aer.noise import (
    NoiseModel,
    QuantumError,
    ReadoutError,
    depolarizing_error,
    thermal_relaxation_error,
)

from backends._devices import fake_device
from qhybrid.core import NoiseSpec, ReadoutNoiseSpec, SpecError

_GATES = get_standard_gate_name_mapping()


def noise_device(noise: NoiseSpec, device: str | None, *, field: str) -> BackendV2 | None:
    """The fake device whose model is the base: the backend's own, or the section's.

    Raises:
        BackendNameError: The section names a device qiskit-ibm-runtime does not have.
    """
    name = device or noise.device
    return fake_device(name, field=f"{field}.device") if name else None


def build_noise_model(
    noise: NoiseSpec, device: BackendV2 | None, *, num_qubits: int | None = None,
    field: str = "noise",
) -> NoiseModel:
    """The Aer noise model ``noise`` describes, on top of ``device``'s when given.

    Args:
        noise: The section.
        device: The fake device whose model is the base (see :func:`noise_device`).
        num_qubits: Qubits a per-qubit readout list must cover (the device's, when given).
        field: The section's place in the spec, for errors.

    Raises:
        SpecError: A gate name qiskit does not know, a gate whose arity does not fit its
            group, or a per-qubit readout list of the device's wrong length, naming the field.
    """
    gate_errors = noise.depolarizing is not None or noise.thermal_relaxation is not None
    if device is not None:
        # Each part given replaces the device's: from_backend leaves that part out.
        model = NoiseModel.from_backend(device, gate_error=not gate_errors,
                                        thermal_relaxation=not gate_errors,
                                        readout_error=noise.readout is None
                                        and noise.readout_per_qubit is None)
        num_qubits = device.num_qubits
    else:
        model = NoiseModel()
    for gate, error in _gate_errors(noise, field).items():
        model.add_all_qubit_quantum_error(error, gate)
    if noise.readout is not None:
        model.add_all_qubit_readout_error(_readout(noise.readout))
    if noise.readout_per_qubit is not None:
        if num_qubits is not None and len(noise.readout_per_qubit) != num_qubits:
            raise SpecError(
                f"{field}.readout_per_qubit: lists {len(noise.readout_per_qubit)} qubits, the "
                f"device has {num_qubits}", field=f"{field}.readout_per_qubit")
        for qubit, pair in enumerate(noise.readout_per_qubit):
            model.add_readout_error(_readout(pair), [qubit])
    return model


def _readout(pair: ReadoutNoiseSpec) -> ReadoutError:
    # Rows are the prepared state, columns the read one.
    return ReadoutError([[1 - pair.p1_given_0, pair.p1_given_0],
                         [pair.p0_given_1, 1 - pair.p0_given_1]])


def _gate_errors(noise: NoiseSpec, field: str) -> dict[str, QuantumError]:
    """One error per gate name: depolarising, then relaxation during the gate, composed."""
    errors: dict[str, QuantumError] = {}
    depolarizing = noise.depolarizing
    if depolarizing is not None:
        for group, arity in (("one_qubit", 1), ("two_qubit", 2)):
            for gate, rate in getattr(depolarizing, group).items():
                _check_gate(gate, arity, f"{field}.depolarizing.{group}.{gate}")
                errors[gate] = depolarizing_error(rate, arity)
    thermal = noise.thermal_relaxation
    if thermal is not None:
        for gate, nanoseconds in thermal.gate_times_ns.items():
            where = f"{field}.thermal_relaxation.gate_times_ns.{gate}"
            arity = _check_gate(gate, None, where)
            # T1, T2 and the gate time in one unit (ns); every qubit the gate touches relaxes.
            one = thermal_relaxation_error(thermal.t1_us * 1e3, thermal.t2_us * 1e3, nanoseconds)
            error = one if arity == 1 else one.expand(one)
            errors[gate] = errors[gate].compose(error) if gate in errors else error
    return errors


def _check_gate(gate: str, arity: int | None, field: str) -> int:
    known = _GATES.get(gate)
    if known is None or known.num_qubits not in (1, 2):
        raise SpecError(f"{field}: not a one- or two-qubit standard gate name "
                              "(e.g. sx, x, rz, cx, cz, ecr)", field=field)
    if arity is not None and known.num_qubits != arity:
        raise SpecError(f"{field}: {gate} acts on {known.num_qubits} qubits, not {arity}",
                              field=field)
    return int(known.num_qubits)
