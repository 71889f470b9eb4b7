"""Aer simulators: ideal (``aer``, or ``aer:<method>`` to choose the simulation method), with a
fake device's noise (``aer-noisy:<device>``), or with a noise model chosen in the spec (a
``noise`` section, alone or overriding a device's; backends/_noise.py).

With a noise section, or when mitigation or a precision is asked, a noisy simulator estimates
by sampling, as a device does, so readout errors and shot noise count and readout mitigation
and ZNE apply (backends/_mitigation.py)."""

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
from backends._mitigation import sampled_estimates
from backends._noise import build_noise_model, noise_device
from backends._protocol import BackendLimits, Submission, SubmissionResult
from qhybrid.core import BackendName, ExecutionError, NoiseSpec, SubmissionError

# Up to this many active qubits a density matrix (cost independent of shots) beats
# Monte Carlo trajectories for noisy sampling; measured at 10 qubits: ~10 s vs ~40 s/4000 shots.
_DENSITY_MATRIX_MAX_QUBITS = 10


class AerBackend:
    """Runs circuits on Aer, optionally transpiled for and noisy like a fake IBM device.

    Args:
        name: ``aer``, ``aer:<method>`` or ``aer-noisy:<fake device>``.
        transpiler_seed: Seed of the layout and routing passes (recorded in the manifest).
        noise: The noise to simulate instead of (or on top of) the device's, if any.
        field: Where ``noise`` sits in the spec, for errors.

    Raises:
        BackendNameError: ``noise`` names an unknown fake device.
        SpecError: ``noise`` names an unknown gate or does not fit the device.
    """

    def __init__(self, name: BackendName, *, transpiler_seed: int = 0,
                 noise: NoiseSpec | None = None, field: str = "noise") -> None:
        self.name = str(name)
        self.transpiler_seed = transpiler_seed
        self.remote = False
        self.method = name.method
        self.limits = BackendLimits()
        self.noise_spec = noise
        self._device = (noise_device(noise, name.device, field=field) if noise is not None
                        else fake_device(name.device) if name.device else None)
        self._noise: NoiseModel | None = (
            build_noise_model(noise, self._device, field=field) if noise is not None
            else NoiseModel.from_backend(self._device) if self._device else None)
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
        noise = f"|noise={self.noise_spec.sha256()}" if self.noise_spec is not None else ""
        return (f"{self.name}|transpiler_seed={self.transpiler_seed}"
                f"|opt={self._transpiled.optimization_level}{noise}")

    @property
    def num_qubits(self) -> int | None:
        """Qubits of the emulated device; None for the ideal simulator (memory is the limit)."""
        return self._device.num_qubits if self._device is not None else None

    def describe(self) -> dict[str, object]:
        """Name, simulator version, device and its calibration snapshot, and the noise section
        with its SHA-256 when one is given."""
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
        if self.noise_spec is not None:
            info |= {"noise": self.noise_spec.model_dump(mode="json"),
                     "noise_sha256": self.noise_spec.sha256()}
        return info

    def simulator(self) -> AerSimulator:
        """The noisy simulator estimates sample (the device's target, if any, and the model).

        Raises:
            SubmissionError: The backend is noiseless.
        """
        if self._noise is None:
            raise SubmissionError(f"{self.name} is noiseless", field="noise")
        if self._device is not None:
            return AerSimulator.from_backend(self._device, noise_model=self._noise)
        return AerSimulator(noise_model=self._noise, **({"method": self.method}
                                                         if self.method else {}))

    def prepare(self, circuit: QuantumCircuit) -> QuantumCircuit:
        """The circuit as this backend executes it (transpiled for the device, if any)."""
        return self._transpiled(circuit)

    def _backend_options(self, active_qubits: int) -> dict[str, object]:
        if self._noise is None:
            return {"method": self.method} if self.method else {}
        method = "density_matrix" if active_qubits <= _DENSITY_MATRIX_MAX_QUBITS else "automatic"
        return {"noise_model": self._noise, "method": method}

    def refused_options(self, submission: Submission) -> list[str]:
        """What Aer cannot apply, refused and never silently dropped: any mitigation on a
        noiseless simulator or when sampling; twirling and dynamical decoupling always."""
        m = submission.mitigation
        if m is None:
            return []
        if self._noise is None:
            return ["mitigation"]
        refused = [f"mitigation.{t}" for t in ("twirling", "dynamical_decoupling")
                   if getattr(m, t)]
        if submission.kind == "sample":
            refused += [f"mitigation.{t}" for t in ("readout", "zne") if getattr(m, t)]
        return refused

    def estimate_qpu_seconds(self, submission: Submission) -> float:
        """Simulators use no QPU time."""
        return 0.0

    def run(self, submission: Submission) -> SubmissionResult:
        """Execute every PUB of the submission in one primitive call, synchronously.

        Raises:
            SubmissionError: Refused options, or PUBs the primitive rejects as formed.
            ExecutionError: The simulator failed.
        """
        refused = self.refused_options(submission)
        if refused:
            raise SubmissionError(f"{self.name} cannot apply {', '.join(refused)}"
                                  + (" (it is noiseless)" if self._noise is None else ""),
                                  field=refused[0])
        width = max(pub.circuit.num_qubits for pub in submission.pubs)
        backend_options = self._backend_options(width)
        readout = self.noise_spec.readout_per_qubit if self.noise_spec is not None else None
        if readout is not None and self._device is None and width > len(readout):
            raise SubmissionError(
                f"{self.name}: noise.readout_per_qubit lists {len(readout)} qubits, the circuit "
                f"has {width}", field="noise.readout_per_qubit")
        if submission.kind == "estimate" and self._samples_estimates(submission):
            return self._sampled(submission, backend_options)
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

    def _samples_estimates(self, submission: Submission) -> bool:
        """Whether to estimate by sampling: with a noise section, or when mitigation or a
        precision is asked. A fake device's noise alone keeps Aer's exact noisy expectation
        (gate noise only, no shot noise), which finite-difference optimisers need."""
        return self._noise is not None and (
            self.noise_spec is not None or submission.mitigation is not None
            or submission.precision is not None)

    def _sampled(self, submission: Submission,
                 backend_options: dict[str, object]) -> SubmissionResult:
        try:
            return sampled_estimates(submission, self.simulator(), self.prepare, name=self.name,
                                     sampler_options=backend_options)
        except AerError as exc:
            raise ExecutionError(f"{self.name}: {exc}", provider_status="ERROR") from exc

    def _call(self, run: Callable[[], BasePrimitiveJob]) -> PrimitiveResult:
        """Run a primitive and wait for it, mapping what Aer and qiskit's PUB checks raise."""
        try:
            return run().result()
        except AerError as exc:
            raise ExecutionError(f"{self.name}: {exc}", provider_status="ERROR") from exc
        except ValueError as exc:  # qiskit's PUB coercion: shapes or parameters that do not fit
            raise SubmissionError(f"{self.name}: {exc}") from exc
