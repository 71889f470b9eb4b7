"""Aer simulators: ideal (``aer``) and with a fake device's noise (``aer-noisy:<device>``)."""

from __future__ import annotations

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer import AerError, AerSimulator
from qiskit_aer.noise import NoiseModel
from qiskit_aer.primitives import EstimatorV2, SamplerV2

from qhybrid.core import BackendName, ExecutionError, SubmissionError
from backends._devices import calibration_snapshot, fake_device
from backends._isa import IsaCache, counts_by_row

# Up to this many active qubits a density matrix (cost independent of shots) beats
# Monte Carlo trajectories for noisy sampling; measured at 10 qubits: ~10 s vs ~40 s/4000 shots.
_DENSITY_MATRIX_MAX_QUBITS = 10


class AerBackend:
    """Runs circuits on Aer, optionally transpiled for and noisy like a fake IBM device.

    Args:
        name: ``aer`` or ``aer-noisy:<fake device>``.
        transpiler_seed: Seed of the layout and routing passes (recorded in the manifest).
    """

    def __init__(self, name: BackendName, *, transpiler_seed: int = 0) -> None:
        self.name = str(name)
        self.transpiler_seed = transpiler_seed
        self._device = fake_device(name.device) if name.device else None
        self._noise = NoiseModel.from_backend(self._device) if self._device else None
        self._transpiled = IsaCache(
            self.name, self._device or AerSimulator(), num_qubits=self.num_qubits,
            optimization_level=1 if self._device else 0, seed=transpiler_seed,
        )

    @property
    def num_qubits(self) -> int | None:
        """Qubits of the emulated device; None for the ideal simulator (memory is the limit)."""
        return self._device.num_qubits if self._device is not None else None

    def describe(self) -> dict[str, object]:
        """Name, simulator version, device and its calibration snapshot."""
        import qiskit_aer

        info: dict[str, object] = {"name": self.name, "simulator": f"qiskit-aer {qiskit_aer.__version__}"}
        if self._device is not None:
            info |= {
                "device": self._device.name,
                "device_version": self._device.backend_version,
                "num_qubits": self._device.num_qubits,
                "calibration": calibration_snapshot(self._device.target),
                "transpiler_seed": self.transpiler_seed,
            }
        return info

    def prepare(self, circuit: QuantumCircuit) -> QuantumCircuit:
        """The circuit as this backend executes it (transpiled for the device, if any)."""
        return self._transpiled(circuit)

    def _backend_options(self, active_qubits: int) -> dict[str, object]:
        if self._noise is None:
            return {}
        method = "density_matrix" if active_qubits <= _DENSITY_MATRIX_MAX_QUBITS else "automatic"
        return {"noise_model": self._noise, "method": method}

    def estimate(
        self, circuit: QuantumCircuit, observable: SparsePauliOp, points: np.ndarray, *, seed: int
    ) -> np.ndarray:
        """Expectation values for every row of ``points``, in one PUB (exact when ideal)."""
        isa = self.prepare(circuit)
        mapped = observable.apply_layout(isa.layout) if isa.layout is not None else observable
        estimator = EstimatorV2(
            options={
                "backend_options": self._backend_options(circuit.num_qubits),
                "run_options": {"seed_simulator": seed},
            }
        )
        try:
            result = estimator.run([(isa, mapped, np.asarray(points))]).result()
        except AerError as exc:
            raise ExecutionError(f"{self.name}: {exc}", provider_status="ERROR") from exc
        except (ValueError, TypeError) as exc:
            raise SubmissionError(f"{self.name}: {exc}") from exc
        return np.asarray(result[0].data.evs, dtype=float).reshape(-1)

    def sample(
        self, circuit: QuantumCircuit, points: np.ndarray, *, shots: int, seed: int
    ) -> list[dict[str, int]]:
        """Counts for every row of ``points``, in one PUB; the same seed gives the same counts."""
        isa = self.prepare(circuit)
        sampler = SamplerV2(
            seed=seed,
            options={"backend_options": self._backend_options(circuit.num_qubits)},
        )
        points = np.asarray(points)
        try:
            result = sampler.run([(isa, points)], shots=shots).result()
        except AerError as exc:
            raise ExecutionError(f"{self.name}: {exc}", provider_status="ERROR") from exc
        except (ValueError, TypeError) as exc:
            raise SubmissionError(f"{self.name}: {exc}") from exc
        return counts_by_row(result[0], circuit, points)
