"""Aer simulators: ideal (``aer``, or ``aer:<method>`` to choose the simulation method) and with
a fake device's noise (``aer-noisy:<device>``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.primitives import BasePrimitiveJob, PrimitiveResult
from qiskit_aer import AerError, AerSimulator
from qiskit_aer.noise import NoiseModel
from qiskit_aer.primitives import EstimatorV2, SamplerV2

from backends._devices import calibration_snapshot, fake_device
from backends._isa import IsaCache, counts_by_row
from backends._protocol import BackendLimits, Submission, SubmissionResult
from qhybrid.core import BackendName, ExecutionError, SubmissionError

# Up to this many active qubits a density matrix (cost independent of shots) beats
# Monte Carlo trajectories for noisy sampling; measured at 10 qubits: ~10 s vs ~40 s/4000 shots.
_DENSITY_MATRIX_MAX_QUBITS = 10


class AerBackend:
    """Runs circuits on Aer, optionally transpiled for and noisy like a fake IBM device.

    Args:
        name: ``aer``, ``aer:<method>`` or ``aer-noisy:<fake device>``.
        transpiler_seed: Seed of the layout and routing passes (recorded in the manifest).
    """

    def __init__(self, name: BackendName, *, transpiler_seed: int = 0) -> None:
        self.name = str(name)
        self.transpiler_seed = transpiler_seed
        self.remote = False
        self.method = name.method
        self.limits = BackendLimits()
        self._device = fake_device(name.device) if name.device else None
        self._noise = NoiseModel.from_backend(self._device) if self._device else None
        self._transpiled = IsaCache(
            self.name, self._device or AerSimulator(), num_qubits=self.num_qubits,
            optimization_level=1 if self._device else 0, seed=transpiler_seed,
        )

    @property
    def exact(self) -> bool:
        """Whether estimates at precision 0 are exact: no noise, and not the approximate
        extended-stabilizer method."""
        return self._noise is None and self.method != "extended_stabilizer"

    @property
    def fingerprint(self) -> str:
        """Name plus everything that shapes the executed circuit (part of idempotency keys)."""
        return (f"{self.name}|transpiler_seed={self.transpiler_seed}"
                f"|opt={self._transpiled.optimization_level}")

    @property
    def num_qubits(self) -> int | None:
        """Qubits of the emulated device; None for the ideal simulator (memory is the limit)."""
        return self._device.num_qubits if self._device is not None else None

    def describe(self) -> dict[str, object]:
        """Name, simulator version, device and its calibration snapshot."""
        import qiskit_aer

        info: dict[str, object] = {"name": self.name,
                                   "simulator": f"qiskit-aer {qiskit_aer.__version__}",
                                   "method": self.method or "automatic", "exact": self.exact}
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
            return {"method": self.method} if self.method else {}
        method = "density_matrix" if active_qubits <= _DENSITY_MATRIX_MAX_QUBITS else "automatic"
        return {"noise_model": self._noise, "method": method}

    def refused_options(self, submission: Submission) -> list[str]:
        """Aer applies no error mitigation: refused, never silently dropped."""
        return ["mitigation"] if submission.mitigation is not None else []

    def estimate_qpu_seconds(self, submission: Submission) -> float:
        """Simulators use no QPU time."""
        return 0.0

    def run(self, submission: Submission) -> SubmissionResult:
        """Execute every PUB of the submission in one primitive call, synchronously.

        Raises:
            SubmissionError: Refused options, or PUBs the primitive rejects as formed.
            ExecutionError: The simulator failed.
        """
        if self.refused_options(submission):
            raise SubmissionError(f"{self.name} cannot apply error mitigation", field="mitigation")
        width = max(pub.circuit.num_qubits for pub in submission.pubs)
        backend_options = self._backend_options(width)
        if submission.kind == "estimate":
            estimator = EstimatorV2(options={
                "backend_options": backend_options,
                "run_options": {"seed_simulator": submission.seed},
            })
            pubs = []
            for pub in submission.pubs:
                isa = self.prepare(pub.circuit)
                observable = pub.observable
                assert observable is not None, "an estimate PUB carries its observable"
                mapped = (observable.apply_layout(isa.layout) if isa.layout is not None
                          else observable)
                pubs.append((isa, mapped, np.asarray(pub.points)))
            precision = submission.precision or 0.0
            estimates = self._call(lambda: estimator.run(pubs, precision=precision))
            return SubmissionResult(
                evs=[np.asarray(r.data.evs, dtype=float).reshape(-1) for r in estimates],
                stds=[np.asarray(r.data.stds, dtype=float).reshape(-1) for r in estimates],
                metadata={"simulator": "aer", "mitigation": None},
            )
        sampler = SamplerV2(seed=submission.seed, options={"backend_options": backend_options})
        sample_pubs = [(self.prepare(pub.circuit), np.asarray(pub.points))
                       for pub in submission.pubs]
        samples = self._call(lambda: sampler.run(sample_pubs, shots=submission.shots))
        return SubmissionResult(
            counts=[counts_by_row(r) for r in samples],
            metadata={"simulator": "aer", "mitigation": None},
        )

    def _call(self, run: Callable[[], BasePrimitiveJob]) -> PrimitiveResult:
        """Run a primitive and wait for it, mapping what Aer and qiskit's PUB checks raise."""
        try:
            return run().result()
        except AerError as exc:
            raise ExecutionError(f"{self.name}: {exc}", provider_status="ERROR") from exc
        except ValueError as exc:  # qiskit's PUB coercion: shapes or parameters that do not fit
            raise SubmissionError(f"{self.name}: {exc}") from exc
