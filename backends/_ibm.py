"""qiskit-ibm-runtime: local testing mode on fake devices, or real IBM hardware with a token.

Uses the executor-based primitives (``executor_sampler.Sampler``, ``executor_estimator.Estimator``);
the legacy ``SamplerV2``/``EstimatorV2`` are deprecated since 0.50 and ignore resilience options
in local mode, while these apply readout mitigation (TREX), ZNE, twirling and dynamical
decoupling on the client, in local mode as on hardware.

Local-mode jobs (``LocalRuntimeJob``) have no tags and cannot be fetched again by id, so fake
devices run synchronously here and :class:`~backends._jobs.LocalJobs` keeps their outcomes;
real devices are remote: jobs are tagged with the idempotency key and fetched by id.

Every job is tagged with its submission's ``tags`` too (``qhybrid``, ``trace:<trace id>``,
``job:<job id>``), through the primitives' ``options.environment.job_tags``, which the
executor-based primitives hand to their ``Executor`` and it to IBM. Local mode sets them the
same way; its ``Executor`` keeps them in its options and does not send them anywhere.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
import warnings
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pydantic
from pydantic import SecretStr
from qiskit.circuit import QuantumCircuit
from qiskit.primitives import PrimitiveResult
from qiskit.providers import BackendV2
from qiskit_ibm_runtime import Batch, QiskitRuntimeService, RuntimeJobV2, Session
from qiskit_ibm_runtime.exceptions import (
    RuntimeInvalidStateError,
)
from qiskit_ibm_runtime.executor_estimator import Estimator
from qiskit_ibm_runtime.executor_sampler import Sampler
from qiskit_ibm_runtime.fake_provider.local_runtime_job import LocalRuntimeJob

from backends._devices import calibration_snapshot, fake_device
from backends._ibm_errors import RUNTIME_ERRORS, map_runtime_error
from backends._isa import IsaCache, counts_by_row
from backends._protocol import BackendLimits, JobStatus, Mode, Submission, SubmissionResult
from qhybrid.core import (
    BackendName,
    BackendNameError,
    MitigationSpec,
    PostProcessingError,
    SubmissionError,
)

_P = TypeVar("_P", Estimator, Sampler)

# Repetition delay between shots on IBM devices (their default rep_delay), seconds.
_REP_DELAY = 250e-6
_STATUS: dict[str, JobStatus] = {"INITIALIZING": "QUEUED", "QUEUED": "QUEUED",
                                  "VALIDATING": "QUEUED", "RUNNING": "RUNNING", "DONE": "DONE",
                                  "ERROR": "ERROR", "CANCELLED": "CANCELLED"}


def mitigation_options(mitigation: MitigationSpec | None) -> dict[str, object]:
    """Runtime Estimator options for ``mitigation`` (everything off when None).

    ``resilience_level`` is pinned to 0 so that only what the spec asks for is applied.
    """
    m = mitigation
    if m is None:
        return {"resilience_level": 0}
    resilience: dict[str, object] = {"measure_mitigation": m.readout, "zne_mitigation": m.zne}
    # Readout mitigation (TREX) needs measurement twirling; asking otherwise warns.
    twirling: dict[str, object] = {"enable_gates": m.twirling,
                                   "enable_measure": m.twirling or m.readout}
    decoupling: dict[str, object] = {"enable": m.dynamical_decoupling}
    if m.zne:
        resilience["zne"] = {
            "noise_factors": list(m.zne_noise_factors), "extrapolator": m.zne_extrapolator}
    if m.twirling:
        twirling["num_randomizations"] = m.twirling_randomizations
    if m.dynamical_decoupling:
        decoupling["sequence_type"] = m.dynamical_decoupling_sequence
    return {
        "resilience_level": 0,
        "resilience": resilience,
        "twirling": twirling,
        "dynamical_decoupling": decoupling,
    }


def _applied(metadata: object) -> dict[str, object] | None:
    """The mitigation-related options the primitive reports it finalised, JSON-ready; None when
    it applied no technique at all."""
    options = metadata.get("options", {}) if isinstance(metadata, dict) else {}
    keep = {k: options[k] for k in ("resilience_level", "resilience", "twirling",
                                     "dynamical_decoupling") if k in options}
    keep = json.loads(json.dumps(keep, default=str))
    resilience = keep.get("resilience") or {}
    twirling = keep.get("twirling") or {}
    applied = (keep.get("resilience_level") or resilience.get("measure_mitigation")
               or resilience.get("zne_mitigation") or resilience.get("pec_mitigation")
               or twirling.get("enable_gates") or twirling.get("enable_measure")
               or (keep.get("dynamical_decoupling") or {}).get("enable"))
    return keep if applied else None


class IbmBackend:
    """A qiskit-ibm-runtime device: ``ibm:fake_<name>`` runs locally, anything else on IBM.

    Args:
        name: ``ibm:<device>``.
        transpiler_seed: Seed of layout and routing.
        token: IBM Quantum API key; needed only for real devices.
        channel: QiskitRuntimeService channel.
        instance: QiskitRuntimeService instance (CRN), if any.
        precision: Default target standard error of estimates.
        timeout: Seconds to wait for a remote job's result before a (transient) timeout.
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
        timeout: float = 3600.0,
    ) -> None:
        assert name.device is not None
        self.name = str(name)
        self.transpiler_seed = transpiler_seed
        self.precision = precision
        self.timeout = timeout
        self.remote = not name.is_fake
        self._service: QiskitRuntimeService | None = None
        self._mode: Session | Batch | None = None
        if name.is_fake:
            self._device: BackendV2 = fake_device(name.device)
        else:
            if token is None:
                raise BackendNameError(
                    f"{self.name} is real IBM hardware: set QHYBRID_IBM_TOKEN (or "
                    "QHYBRID_IBM_TOKEN_BLOCK, a Prefect Secret block) to use it",
                    field="ibm_token",
                )
            try:
                self._service = QiskitRuntimeService(
                    channel=channel, token=token.get_secret_value(), instance=instance
                )
                self._device = self._service.backend(name.device)
            except RUNTIME_ERRORS as exc:
                raise map_runtime_error(exc, self.name) from exc
        configuration = getattr(self._device, "configuration", lambda: None)()
        max_pubs = getattr(configuration, "max_experiments", None)
        self.limits = BackendLimits(max_pubs=int(max_pubs or 300))
        self._transpiled = IsaCache(self.name, self._device, num_qubits=self._device.num_qubits,
                                    optimization_level=1, seed=transpiler_seed)

    def queue_depth(self) -> int:
        """Jobs queued ahead on the device, its ``status().pending_jobs`` (a fake device in
        local mode reports 0).

        Raises:
            TransportError: IBM could not be asked (mapped like every runtime error).
        """
        try:
            return int(self._device.status().pending_jobs)
        except RUNTIME_ERRORS as exc:
            raise map_runtime_error(exc, self.name) from exc

    @property
    def fingerprint(self) -> str:
        """Name plus everything that shapes the executed circuit (part of idempotency keys)."""
        return (f"{self.name}|transpiler_seed={self.transpiler_seed}"
                f"|opt={self._transpiled.optimization_level}")

    @property
    def num_qubits(self) -> int:
        """Qubits of the device."""
        num_qubits: int = self._device.num_qubits
        return num_qubits

    def describe(self) -> dict[str, object]:
        """Name, device version and calibration snapshot."""
        import qiskit_ibm_runtime

        return {
            "name": self.name,
            "device": self._device.name,
            "device_version": getattr(self._device, "backend_version", None),
            "num_qubits": self._device.num_qubits,
            "runtime": f"qiskit-ibm-runtime {qiskit_ibm_runtime.__version__}",
            "local_testing_mode": not self.remote,
            "calibration": calibration_snapshot(self._device.target),
            "transpiler_seed": self.transpiler_seed,
        }

    def prepare(self, circuit: QuantumCircuit) -> QuantumCircuit:
        """The circuit transpiled for the device with the recorded seed."""
        return self._transpiled(circuit)

    def refused_options(self, submission: Submission) -> list[str]:
        """Sampling applies twirling and DD only; readout mitigation and ZNE are for estimates."""
        m = submission.mitigation
        if submission.kind == "sample" and m is not None and (m.readout or m.zne):
            return ["mitigation.readout" if m.readout else "mitigation.zne"]
        return []

    def _shots(self, submission: Submission) -> int:
        if submission.kind == "sample":
            return int(submission.shots or 4096)
        return math.ceil(1 / (submission.precision or self.precision) ** 2)

    def estimate_qpu_seconds(self, submission: Submission) -> float:
        """Shots times (schedule duration + repetition delay), over every row and basis.

        Estimates use ``ceil(1/precision^2)`` shots per measurement basis; ZNE multiplies by
        its noise factors (folded circuits are longer too) and readout mitigation adds its
        calibration circuits (counted as a doubling).
        """
        total = 0.0
        m = submission.mitigation
        for pub in submission.pubs:
            duration = self.prepare(pub.circuit).estimate_duration(self._device.target)
            bases = 1
            if pub.observable is not None:
                bases = len(pub.observable.group_commuting(qubit_wise=True))
            factor = 1.0
            if m is not None and submission.kind == "estimate":
                factor *= sum(m.zne_noise_factors) if m.zne else 1.0
                factor *= 2.0 if m.readout else 1.0
            total += pub.rows * bases * self._shots(submission) * (duration * factor + _REP_DELAY)
        return total

    def _primitive(self, submission: Submission, tags: list[str] | None) -> Estimator | Sampler:
        mode = self._mode or self._device
        options: dict[str, object] = {"simulator": {"seed_simulator": submission.seed}}
        if tags:
            options["environment"] = {"job_tags": tags}
        if submission.kind == "estimate":
            options |= mitigation_options(submission.mitigation)
            options["default_precision"] = submission.precision or self.precision
            return self._options_checked(lambda: Estimator(mode=mode, options=options))
        m = submission.mitigation
        if m is not None:
            twirling: dict[str, object] = {"enable_gates": m.twirling,
                                           "enable_measure": m.twirling}
            if m.twirling:
                twirling["num_randomizations"] = m.twirling_randomizations
            options["twirling"] = twirling
            decoupling: dict[str, object] = {"enable": m.dynamical_decoupling}
            if m.dynamical_decoupling:
                decoupling["sequence_type"] = m.dynamical_decoupling_sequence
            options["dynamical_decoupling"] = decoupling
        return self._options_checked(lambda: Sampler(mode=mode, options=options))

    def _options_checked(self, build: Callable[[], _P]) -> _P:
        try:
            return build()
        except pydantic.ValidationError as exc:  # the runtime validates its options with pydantic
            raise SubmissionError(f"{self.name}: options refused: {exc}") from exc

    def _pubs(self, submission: Submission) -> list[tuple[object, ...]]:
        out: list[tuple[object, ...]] = []
        for pub in submission.pubs:
            isa = self.prepare(pub.circuit)
            if pub.observable is not None:
                out.append((isa, pub.observable.apply_layout(isa.layout), np.asarray(pub.points)))
            else:
                out.append((isa, np.asarray(pub.points)))
        return out

    @staticmethod
    def _convert(results: PrimitiveResult) -> SubmissionResult:
        shots = results.metadata.get("shots") if isinstance(results.metadata, dict) else None
        metadata: dict[str, object] = {
            "mitigation": _applied(results.metadata),
            "shots": int(shots) if isinstance(shots, int | float) else None,
        }
        if results and hasattr(results[0].data, "evs"):
            return SubmissionResult(
                evs=[np.asarray(r.data.evs, dtype=float).reshape(-1) for r in results],
                stds=[np.asarray(r.data.stds, dtype=float).reshape(-1) for r in results],
                metadata=metadata,
            )
        return SubmissionResult(counts=[counts_by_row(r) for r in results], metadata=metadata)

    def _run(
        self, submission: Submission, tags: list[str] | None
    ) -> RuntimeJobV2 | LocalRuntimeJob:
        primitive = self._primitive(submission, tags)
        pubs = self._pubs(submission)
        try:
            if submission.kind == "sample":
                return primitive.run(pubs, shots=submission.shots)
            return primitive.run(pubs)
        except RUNTIME_ERRORS as exc:
            raise map_runtime_error(exc, self.name) from exc
        except ValueError as exc:  # qiskit's PUB coercion: shapes or parameters that do not fit
            raise SubmissionError(f"{self.name}: {exc}") from exc

    def run(self, submission: Submission) -> SubmissionResult:
        """Execute the submission in local testing mode, synchronously (fake devices).

        Raises:
            SubmissionError: Options or PUBs the runtime refuses as formed.
            ExecutionError: The job failed.
        """
        with warnings.catch_warnings():
            # Runtime 0.51's ZNE reports zero per-noise-factor errors in local mode and warns
            # that its fit falls back to unweighted; intervals come from seeded repeats instead.
            # Local mode computes inside run(), so the filter covers both calls.
            warnings.filterwarnings("ignore", message="No positive, finite standard errors",
                                    category=UserWarning)
            job = self._run(submission, list(submission.tags))
            try:
                results = job.result()
            except RUNTIME_ERRORS as exc:
                raise map_runtime_error(exc, self.name) from exc
        return self._convert(results)

    # -- remote jobs (real devices) --------------------------------------------------------

    def _remote(self) -> QiskitRuntimeService:
        if self._service is None:
            raise SubmissionError(f"{self.name} runs in local testing mode; it has no remote jobs")
        return self._service

    def submit(self, submission: Submission, *, tag: str) -> str:
        """Submit to IBM, tagged with the submission's tags and the idempotency key; returns the
        job id.

        Raises:
            QhybridError: The mapped runtime error.
        """
        self._remote()
        job_id: str = self._run(submission, [*submission.tags, f"qhybrid-{tag}"]).job_id()
        return job_id

    def find(self, tag: str, *, since: float | None = None) -> str | None:
        """The newest IBM job carrying the key's tag, created at or after ``since``, if any."""
        # Five seconds' allowance for the difference between our clock and IBM's.
        after = dt.datetime.fromtimestamp(since - 5.0, dt.UTC) if since is not None else None
        try:
            jobs = self._remote().jobs(job_tags=[f"qhybrid-{tag}"], backend_name=self._device.name,
                                       limit=1, created_after=after)
        except RUNTIME_ERRORS as exc:
            raise map_runtime_error(exc, self.name) from exc
        return jobs[0].job_id() if jobs else None

    def _job(self, job_id: str) -> RuntimeJobV2:
        try:
            return self._remote().job(job_id)
        except RUNTIME_ERRORS as exc:
            raise map_runtime_error(exc, self.name) from exc

    def status(self, job_id: str) -> JobStatus:
        """The IBM job's status."""
        try:
            return _STATUS.get(str(self._job(job_id).status()), "QUEUED")
        except RUNTIME_ERRORS as exc:
            raise map_runtime_error(exc, self.name) from exc

    def result(self, job_id: str) -> SubmissionResult:
        """Wait up to ``timeout`` for the IBM job and convert its result.

        Raises:
            TransportError: The wait timed out (transient: a retry re-attaches).
            ExecutionError: The job failed on IBM.
        """
        job = self._job(job_id)
        try:
            results = job.result(timeout=self.timeout)
        except RUNTIME_ERRORS as exc:
            raise map_runtime_error(exc, self.name) from exc
        except (ValueError, KeyError, TypeError) as exc:  # the runtime's result decoders
            raise PostProcessingError(f"{self.name}: cannot decode job {job_id}: {exc}") from exc
        return self._convert(results)

    def cancel(self, job_id: str) -> None:
        """Cancel the IBM job; a job that already finished is left as it is."""
        try:
            self._job(job_id).cancel()
        except RuntimeInvalidStateError:
            return  # 409 "Job cannot be cancelled": it has finished
        except RUNTIME_ERRORS as exc:
            raise map_runtime_error(exc, self.name) from exc

    # -- execution modes -------------------------------------------------------------------

    def open_mode(self, mode: Mode) -> str:
        """Open a Session or Batch that later submissions run in; returns its id.

        In local testing mode the runtime accepts both and runs jobs the same way; its
        session has no id, so a local one is made for the lease.
        """
        cls = Session if mode == "session" else Batch
        try:
            self._mode = cls(backend=self._device)
        except RUNTIME_ERRORS as exc:
            raise map_runtime_error(exc, self.name) from exc
        return self._mode.session_id or f"local-{mode}-{uuid.uuid4().hex[:12]}"

    def close_mode(self, *, cancel: bool = False) -> None:
        """Close the open Session or Batch (cancel its queued jobs when ``cancel``)."""
        mode, self._mode = self._mode, None
        if mode is None:
            return
        try:
            mode.cancel() if cancel else mode.close()
        except RUNTIME_ERRORS as exc:
            raise map_runtime_error(exc, self.name) from exc

    def release(self, kind: str, provider_id: str) -> None:
        """Close a lease another process left open: cancel its job, or its Session/Batch."""
        if kind == "job":
            self.cancel(provider_id)
        elif self._mode is not None and (self._mode.session_id or "") == provider_id:
            self.close_mode(cancel=True)
        elif self.remote and not provider_id.startswith("local-"):
            try:
                mode = Session if kind == "session" else Batch
                mode.from_id(provider_id, self._remote()).cancel()
            except RUNTIME_ERRORS as exc:
                raise map_runtime_error(exc, self.name) from exc
        elif self._mode is not None:
            self.close_mode(cancel=True)
