"""The backend protocol: submit work, get a handle, poll it, fetch its result, or cancel it.

A :class:`Submission` is a batch of PUBs of one kind (estimate or sample) with its options;
the provider's answer is a :class:`SubmissionResult`. Every backend implements
:class:`Backend`; nothing of a provider's SDK crosses this seam.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from qiskit import qasm3
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from qhybrid.core import MitigationSpec, PostProcessingError, SubmissionError

Counts = dict[str, int]
JobStatus = Literal["QUEUED", "RUNNING", "DONE", "ERROR", "CANCELLED"]
Mode = Literal["single", "batch", "session"]


@dataclass(frozen=True, eq=False)
class Pub:
    """One circuit with a parameter array (and, to estimate, an observable).

    Attributes:
        circuit: A logical circuit; the backend transpiles it.
        points: Shape ``(rows, circuit.num_parameters)``, in ``circuit.parameters`` order.
        observable: What to estimate; None for sampling.
    """

    circuit: QuantumCircuit
    points: np.ndarray
    observable: SparsePauliOp | None = None

    @property
    def rows(self) -> int:
        """Parameter sets in this PUB."""
        return int(np.asarray(self.points).shape[0])


@dataclass(frozen=True, eq=False)
class Submission:
    """A batch of PUBs of one kind, and the options they run with.

    Attributes:
        kind: ``estimate`` or ``sample``.
        pubs: The PUBs, in order.
        seed: Simulator seed (recorded and part of the key on hardware too).
        shots: Shots per row when sampling.
        precision: Target standard error when estimating.
        mitigation: Error mitigation to apply; None for none.
        tags: Labels for the provider's job (``qhybrid.core.provider_job_tags``: the trace and
            job ids of the requests it serves). They do not change the result, so they are not
            part of :meth:`options` nor of the idempotency key: the same work for another
            request re-attaches to the job, which keeps the tags it was submitted with.
    """

    kind: Literal["estimate", "sample"]
    pubs: tuple[Pub, ...]
    seed: int
    shots: int | None = None
    precision: float | None = None
    mitigation: MitigationSpec | None = None
    tags: tuple[str, ...] = ()

    def options(self) -> dict[str, object]:
        """The options that change the result, as canonical JSON-ready data."""
        return {
            "kind": self.kind, "seed": self.seed, "shots": self.shots,
            "precision": self.precision,
            "mitigation": self.mitigation.model_dump(mode="json") if self.mitigation else None,
        }


@dataclass
class SubmissionResult:
    """A provider's answer, one entry per PUB.

    Attributes:
        evs: Expectation values per row (estimate).
        stds: Their standard errors (estimate).
        counts: Counts per row (sample).
        metadata: What the provider reports (e.g. mitigation applied), JSON-ready.
    """

    evs: list[np.ndarray] = field(default_factory=list)
    stds: list[np.ndarray] = field(default_factory=list)
    counts: list[list[Counts]] = field(default_factory=list)
    metadata: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialise for the state store."""
        return json.dumps({
            "evs": [e.tolist() for e in self.evs], "stds": [s.tolist() for s in self.stds],
            "counts": self.counts, "metadata": self.metadata,
        }, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> SubmissionResult:
        """Read back :meth:`to_json`.

        Raises:
            PostProcessingError: The stored result is not readable.
        """
        try:
            data = json.loads(text)
            return cls(evs=[np.asarray(e, dtype=float) for e in data["evs"]],
                       stds=[np.asarray(s, dtype=float) for s in data["stds"]],
                       counts=data["counts"], metadata=data["metadata"])
        except (ValueError, KeyError, TypeError) as exc:
            raise PostProcessingError(f"unreadable stored result: {exc}") from exc

    @classmethod
    def join(cls, parts: list[SubmissionResult], shapes: list[list[int]]) -> SubmissionResult:
        """Reassemble the results of a split submission (see :func:`split`)."""
        flat = SubmissionResult()
        for part in parts:
            flat.evs += part.evs
            flat.stds += part.stds
            flat.counts += part.counts
        out = SubmissionResult(metadata=dict(parts[0].metadata) if parts else {})
        shots = [part.metadata.get("shots") for part in parts]
        counted = [n for n in shots if isinstance(n, int)]
        if len(parts) > 1 and len(counted) == len(shots):
            out.metadata["shots"] = sum(counted)
        index = 0
        for chunks in shapes:
            take = slice(index, index + len(chunks))
            if flat.evs:
                out.evs.append(np.concatenate(flat.evs[take]))
                out.stds.append(np.concatenate(flat.stds[take]))
            if flat.counts:
                out.counts.append([c for rows in flat.counts[take] for c in rows])
            index += len(chunks)
        return out


@dataclass(frozen=True)
class BackendLimits:
    """What one provider job may hold; larger submissions are split.

    Attributes:
        max_pubs: PUBs per job.
        max_rows: Parameter sets (rows) per job, over all its PUBs.
        max_bytes: Payload per job: each PUB's OpenQASM 3 text plus its parameter values
            (8 bytes each) and observable terms, an estimate of what goes over the wire.
    """

    max_pubs: int = 300
    max_rows: int = 10_000
    max_bytes: int = 50_000_000


class Described(Protocol):
    """What every backend and local engine tells about itself."""

    name: str
    limits: BackendLimits
    remote: bool
    """True when jobs live at a remote provider (and are leased); False for local engines."""

    @property
    def fingerprint(self) -> str:
        """The name plus what shapes the executed circuits (transpiler seed and level)."""
        ...

    @property
    def num_qubits(self) -> int | None:
        """The device's qubits; None when only memory limits it."""
        ...

    def describe(self) -> dict[str, object]:
        """Name, versions, device and calibration snapshot (JSON-ready)."""
        ...

    def refused_options(self, submission: Submission) -> list[str]:
        """Options in ``submission`` this backend would not apply (strict parity)."""
        ...

    def estimate_qpu_seconds(self, submission: Submission) -> float:
        """Pre-flight estimate of the QPU time the submission would use (0 for simulators)."""
        ...


class Engine(Described, Protocol):
    """A local simulator that runs a submission synchronously (Aer, IBM local testing mode)."""

    def run(self, submission: Submission) -> SubmissionResult:
        """Execute the submission and return its result.

        Raises:
            SubmissionError: The engine refuses the submission as formed.
            ExecutionError: The execution failed.
        """
        ...


class Backend(Described, Protocol):
    """What every backend does; implemented by local job services and remote providers."""

    def submit(self, submission: Submission, *, tag: str) -> str:
        """Send the work; returns the provider's job id. ``tag`` is the idempotency key."""
        ...

    def find(self, tag: str, *, since: float | None = None) -> str | None:
        """The id of a job submitted with ``tag`` at or after ``since`` (epoch seconds), if the
        provider has one."""
        ...

    def status(self, job_id: str) -> JobStatus:
        """The job's state."""
        ...

    def result(self, job_id: str) -> SubmissionResult:
        """Wait for the job and return its result; raises the job's classified error."""
        ...

    def cancel(self, job_id: str) -> None:
        """Cancel the job if it has not finished."""
        ...


@runtime_checkable
class SupportsModes(Protocol):
    """A backend with execution modes (qiskit-ibm-runtime's Session and Batch)."""

    def open_mode(self, mode: Mode) -> str:
        """Open a Session or Batch that later submissions run in; returns its id.

        Raises:
            SubmissionError: The backend has no such mode.
        """
        ...

    def close_mode(self, *, cancel: bool = False) -> None:
        """Close the open Session or Batch (cancelling its queued jobs when ``cancel``)."""
        ...


@runtime_checkable
class ReportsQueue(Protocol):
    """A device with a queue of jobs ahead of a new one (IBM devices)."""

    def queue_depth(self) -> int | None:
        """Jobs queued ahead on the device now; None for a local simulator, which has no queue
        (a fake IBM device in local mode reports its status: 0).

        Raises:
            TransportError: The provider could not be asked.
        """
        ...


@runtime_checkable
class SupportsRelease(Protocol):
    """A backend that can close what another process left open (a job, a Session, a Batch)."""

    def release(self, kind: str, provider_id: str) -> None:
        """Cancel the job, or close the Session or Batch, ``provider_id``."""
        ...


_QASM: dict[int, tuple[weakref.ref[QuantumCircuit], str]] = {}


def _canonical_qasm(circuit: QuantumCircuit) -> str:
    # Cached per circuit object, since the optimiser resubmits one ansatz hundreds of times;
    # an entry goes when its circuit is garbage-collected.
    cached = _QASM.get(id(circuit))
    if cached is None or cached[0]() is not circuit:
        cached = (weakref.ref(circuit), qasm3.dumps(circuit))
        _QASM[id(circuit)] = cached
        weakref.finalize(circuit, _QASM.pop, id(circuit), None)
    return cached[1]


def idempotency_key(submission: Submission, backend: str) -> str:
    """A deterministic key for "this work on this backend": SHA-256 of the canonical OpenQASM 3
    of every circuit, its parameter values and observable, the options, shots and seed, and
    ``backend`` (a backend's ``fingerprint``: its name, transpiler seed and level).
    """
    digest = hashlib.sha256()
    digest.update(json.dumps({"backend": backend, **submission.options()}, sort_keys=True).encode())
    for pub in submission.pubs:
        digest.update(_canonical_qasm(pub.circuit).encode())
        points = np.ascontiguousarray(pub.points, dtype="<f8")
        digest.update(repr(points.shape).encode())
        digest.update(points.tobytes())
        if pub.observable is not None:
            terms = sorted(zip(pub.observable.paulis.to_labels(),
                               (complex(c) for c in pub.observable.coeffs), strict=True),
                           key=lambda t: t[0])
            canonical = [(label, c.real.hex(), c.imag.hex()) for label, c in terms]
            digest.update(repr(canonical).encode())
    return digest.hexdigest()


def _payload(pub: Pub) -> tuple[int, int]:
    """(fixed bytes, bytes per row) of a PUB's payload estimate."""
    fixed = len(_canonical_qasm(pub.circuit))
    if pub.observable is not None:  # a label and a complex coefficient per term
        fixed += len(pub.observable) * (pub.observable.num_qubits + 16)
    return fixed, 8 * max(int(np.asarray(pub.points).shape[-1]), 1)


def split(
    submission: Submission, limits: BackendLimits
) -> tuple[list[Submission], list[list[int]]]:
    """Split a submission so that no part exceeds ``limits``.

    PUBs with more rows than fit one job (by ``max_rows`` or ``max_bytes``) are cut into row
    chunks; chunks are packed in order into parts within ``max_pubs``, ``max_rows`` and
    ``max_bytes``.

    Returns:
        The parts, and for each original PUB the row counts of its chunks (for
        :meth:`SubmissionResult.join`).

    Raises:
        SubmissionError: One row of a PUB alone exceeds ``max_bytes``.
    """
    chunks: list[tuple[Pub, int]] = []
    shapes: list[list[int]] = []
    for pub in submission.pubs:
        points = np.asarray(pub.points)
        fixed, per_row = _payload(pub)
        if fixed + per_row > limits.max_bytes:
            raise SubmissionError(f"one PUB of {fixed + per_row} bytes exceeds the backend's "
                                  f"{limits.max_bytes} bytes per job")
        step = min(limits.max_rows, (limits.max_bytes - fixed) // per_row)
        sizes = []
        for start in range(0, max(pub.rows, 1), step):
            part = points[start:start + step]
            chunks.append((Pub(pub.circuit, part, pub.observable), fixed + per_row * part.shape[0]))
            sizes.append(part.shape[0])
        shapes.append(sizes)
    parts: list[list[Pub]] = [[]]
    rows = size = 0
    for chunk, nbytes in chunks:
        if parts[-1] and (len(parts[-1]) >= limits.max_pubs or rows + chunk.rows > limits.max_rows
                          or size + nbytes > limits.max_bytes):
            parts.append([])
            rows = size = 0
        parts[-1].append(chunk)
        rows += chunk.rows
        size += nbytes
    return [replace(submission, pubs=tuple(p)) for p in parts], shapes
