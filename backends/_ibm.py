"""qiskit-ibm-runtime: local testing mode on fake devices, or real IBM hardware with a token.

Uses the executor-based primitives (``executor_sampler.Sampler``, ``executor_estimator.Estimator``);
the legacy ``SamplerV2``/``EstimatorV2`` are deprecated since 0.50 and ignore resilience options
in local mode.
"""

from __future__ import annotations

import numpy as np
from pydantic import SecretStr
from qiskit.circuit import QuantumCircuit
from qiskit.providers import BackendV2
from qiskit.quantum_info import SparsePauliOp
from qiskit_ibm_runtime import QiskitRuntimeService
import requests
from qiskit_ibm_runtime.exceptions import (
    IBMAccountError,
    IBMApiError,
    IBMBackendError,
    IBMBackendValueError,
    IBMError,
    IBMBackendApiError,
    IBMBackendApiProtocolError,
    IBMInputValueError,
    IBMNotAuthorizedError,
    IBMRuntimeError,
    RuntimeJobFailureError,
    RuntimeJobTimeoutError,
)
from qiskit_ibm_runtime.executor_estimator import Estimator
from qiskit_ibm_runtime.executor_sampler import Sampler

from backends._devices import calibration_snapshot, fake_device
from backends._isa import IsaCache, counts_by_row
from qhybrid.core import (
    BackendName,
    BackendNameError,
    BackendRejectedError,
    ExecutionError,
    QhybridError,
    SubmissionError,
    TransportError,
)


def map_runtime_error(exc: Exception, backend: str) -> QhybridError:
    """Translate a qiskit-ibm-runtime exception into the qhybrid tree, keeping its message."""
    status = type(exc).__name__
    message = f"{backend}: {exc}"
    if isinstance(exc, IBMNotAuthorizedError | IBMAccountError):
        return BackendNameError(message, field="ibm_token")
    if isinstance(exc, RuntimeJobTimeoutError):
        return TransportError(message, provider_status=status)
    if isinstance(exc, RuntimeJobFailureError):
        return ExecutionError(message, provider_status=status)
    if isinstance(exc, IBMInputValueError | IBMBackendValueError):
        return SubmissionError(message, provider_status=status)
    if isinstance(exc, IBMBackendApiProtocolError | IBMBackendApiError | IBMApiError):
        return TransportError(message, provider_status=status)
    if isinstance(exc, requests.Timeout | requests.ConnectionError):
        return TransportError(message, provider_status=status)
    if isinstance(exc, requests.HTTPError):
        code = exc.response.status_code if exc.response is not None else None
        if code is not None and (code == 429 or code >= 500):
            return BackendRejectedError(message, provider_status=str(code))
        return SubmissionError(message, provider_status=str(code))
    if isinstance(exc, IBMRuntimeError | IBMBackendError):
        return BackendRejectedError(message, provider_status=status)
    return ExecutionError(message, provider_status=status)


_RUNTIME_ERRORS = (
    IBMError,
    requests.RequestException,
    IBMAccountError,
    IBMBackendApiError,
    IBMBackendApiProtocolError,
    IBMInputValueError,
    IBMNotAuthorizedError,
    IBMRuntimeError,
    RuntimeJobFailureError,
    RuntimeJobTimeoutError,
)


class IbmBackend:
    """A qiskit-ibm-runtime device: ``ibm:fake_<name>`` runs locally, anything else on IBM.

    Args:
        name: ``ibm:<device>``.
        transpiler_seed: Seed of layout and routing.
        token: IBM Quantum API key; needed only for real devices.
        channel: QiskitRuntimeService channel.
        instance: QiskitRuntimeService instance (CRN), if any.
        precision: Target standard error of estimator expectation values.
    """

    def __init__(
        self,
        name: BackendName,
        *,
        transpiler_seed: int = 0,
        token: SecretStr | None = None,
        channel: str = "ibm_quantum_platform",
        instance: str | None = None,
        precision: float = 1 / 64,
    ) -> None:
        assert name.device is not None
        self.name = str(name)
        self.transpiler_seed = transpiler_seed
        self.precision = precision
        if name.is_fake:
            self._device: BackendV2 = fake_device(name.device)
        else:
            if token is None:
                raise BackendNameError(
                    f"{self.name} is real IBM hardware: set QHYBRID_IBM_TOKEN to use it",
                    field="ibm_token",
                )
            try:
                service = QiskitRuntimeService(
                    channel=channel, token=token.get_secret_value(), instance=instance
                )
                self._device = service.backend(name.device)
            except _RUNTIME_ERRORS as exc:
                raise map_runtime_error(exc, self.name) from exc
        self._transpiled = IsaCache(self.name, self._device, num_qubits=self._device.num_qubits,
                                    optimization_level=1, seed=transpiler_seed)

    @property
    def num_qubits(self) -> int:
        """Qubits of the device."""
        return self._device.num_qubits

    def describe(self) -> dict[str, object]:
        """Name, device version and calibration snapshot."""
        import qiskit_ibm_runtime

        return {
            "name": self.name,
            "device": self._device.name,
            "device_version": getattr(self._device, "backend_version", None),
            "num_qubits": self._device.num_qubits,
            "runtime": f"qiskit-ibm-runtime {qiskit_ibm_runtime.__version__}",
            "local_testing_mode": self.name.startswith("ibm:fake_"),
            "calibration": calibration_snapshot(self._device.target),
            "transpiler_seed": self.transpiler_seed,
        }

    def prepare(self, circuit: QuantumCircuit) -> QuantumCircuit:
        """The circuit transpiled for the device with the recorded seed."""
        return self._transpiled(circuit)

    def estimate(
        self, circuit: QuantumCircuit, observable: SparsePauliOp, points: np.ndarray, *, seed: int
    ) -> np.ndarray:
        """Expectation values for every row of ``points``, in one PUB."""
        isa = self.prepare(circuit)
        estimator = Estimator(
            mode=self._device,
            options={
                "simulator": {"seed_simulator": seed},
                "default_precision": self.precision,
                "resilience_level": 0,
            },
        )
        try:
            result = estimator.run(
                [(isa, observable.apply_layout(isa.layout), np.asarray(points))]
            ).result()
        except _RUNTIME_ERRORS as exc:
            raise map_runtime_error(exc, self.name) from exc
        return np.asarray(result[0].data.evs, dtype=float).reshape(-1)

    def sample(
        self, circuit: QuantumCircuit, points: np.ndarray, *, shots: int, seed: int
    ) -> list[dict[str, int]]:
        """Counts for every row of ``points``, in one PUB."""
        isa = self.prepare(circuit)
        sampler = Sampler(mode=self._device, options={"simulator": {"seed_simulator": seed}})
        points = np.asarray(points)
        try:
            result = sampler.run([(isa, points)], shots=shots).result()
        except _RUNTIME_ERRORS as exc:
            raise map_runtime_error(exc, self.name) from exc
        return counts_by_row(result[0], circuit, points)
