"""Idempotent submission: one attempt at getting a submission's result without paying twice.

An attempt, given the submission's idempotency key:

1. ledger says done or submitted (job id known)  -> re-attach: fetch that job's result;
2. ledger says submitting (we may have crashed mid-submit) -> ask the provider by tag;
3. otherwise the breaker must allow it; write the intent, submit, write the job id (before any
   polling), then wait for the result and mark the key done or failed.

Retrying is not done here: the caller (a Prefect task with ``retry_condition_fn``) calls
:meth:`Submitter.attempt` again, and step 1 or 2 makes the retry re-attach when the provider
already has the job.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from backends._breaker import CircuitBreaker
from backends._protocol import (
    Backend,
    Counts,
    Mode,
    Pub,
    Submission,
    SubmissionResult,
    SupportsModes,
    idempotency_key,
    split,
)
from backends._store import QpuBudget, StateStore
from qhybrid.core import (
    BackendRejectedError,
    DowngradeRecord,
    ExecutionRecord,
    MitigationRecord,
    MitigationSpec,
    QhybridError,
    SubmissionError,
    TransportError,
)

# Identifies this process in the ledger; a key another process claimed less than
# _IN_FLIGHT_SECONDS ago (and has no job for yet) is left to it.
_OWNER = uuid.uuid4().hex
_IN_FLIGHT_SECONDS = 30.0


@dataclass
class ExecutionLog:
    """What the execution plane did for one run; thread-safe, shared by its submitters."""

    provider_submissions: int = 0
    job_ids: list[str] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    reattachments: int = 0
    retries_by_class: Counter[str] = field(default_factory=Counter)
    failures_by_class: Counter[str] = field(default_factory=Counter)
    breaker_trips: int = 0
    fallbacks: list[DowngradeRecord] = field(default_factory=list)
    leases_opened: int = 0
    leases_closed: int = 0
    qpu_seconds: float = 0.0
    mitigation: MitigationRecord | None = None
    _last_error: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self, key: str) -> None:
        """An attempt at ``key`` starts; a previous failed attempt makes this one a retry."""
        with self._lock:
            self.keys.add(key)
            previous = self._last_error.pop(key, None)
            if previous is not None:
                self.retries_by_class[previous] += 1

    def failed(self, key: str, exc: QhybridError) -> None:
        """An attempt at ``key`` failed with ``exc``."""
        with self._lock:
            self._last_error[key] = type(exc).__name__
            self.failures_by_class[type(exc).__name__] += 1

    def count(self, what: str, amount: float = 1) -> None:
        """Add to one of the counters (``reattachments``, ``breaker_trips``, ...)."""
        with self._lock:
            setattr(self, what, getattr(self, what) + amount)

    def submitted(self, job_id: str, qpu_seconds: float) -> None:
        """The provider accepted a job."""
        with self._lock:
            self.provider_submissions += 1
            self.job_ids.append(job_id)
            self.qpu_seconds += qpu_seconds

    def merge(self, record: ExecutionRecord, keys: Iterable[str]) -> None:
        """Add what another log counted, e.g. a worker's that evaluated one chunk of a sweep
        in another process: its ``record`` and the idempotency keys it attempted."""
        with self._lock:
            self.provider_submissions += record.provider_submissions
            self.job_ids.extend(record.job_ids)
            self.keys.update(keys)
            self.reattachments += record.reattachments
            self.retries_by_class.update(record.retries_by_class)
            self.failures_by_class.update(record.failures_by_class)
            self.breaker_trips += record.breaker_trips
            self.fallbacks.extend(record.fallbacks)
            self.leases_opened += record.leases_opened
            self.leases_closed += record.leases_closed
            self.qpu_seconds += record.qpu_seconds_estimate
            if record.mitigation is not None:
                self.mitigation = record.mitigation

    def record(self) -> ExecutionRecord:
        """The contract written into reports and manifests."""
        with self._lock:
            return ExecutionRecord(
                provider_submissions=self.provider_submissions, distinct_jobs=len(self.keys),
                job_ids=tuple(self.job_ids), reattachments=self.reattachments,
                retries_by_class=dict(self.retries_by_class),
                failures_by_class=dict(self.failures_by_class), breaker_trips=self.breaker_trips,
                fallbacks=tuple(self.fallbacks), leases_opened=self.leases_opened,
                leases_closed=self.leases_closed, qpu_seconds_estimate=self.qpu_seconds,
                mitigation=self.mitigation,
            )


class Submitter:
    """Sends submissions to one backend idempotently, behind its circuit breaker.

    Args:
        backend: Where the work runs.
        store: The state store (ledger, breakers, leases).
        log: Where to count what happened.
        flow_run_id: The Prefect flow run that owns the leases opened here.
        breaker_threshold: Consecutive failures that open the breaker.
        breaker_cooldown: Seconds the breaker stays open.
        budget: The QPU budget every new submission with an estimated charge must fit in;
            None: no limit.
    """

    def __init__(self, backend: Backend, store: StateStore, log: ExecutionLog, *,
                 flow_run_id: str | None = None, breaker_threshold: int = 5,
                 breaker_cooldown: float = 60.0, budget: QpuBudget | None = None) -> None:
        self.backend, self.store, self.log = backend, store, log
        self.flow_run_id = flow_run_id
        self.budget = budget
        self.breaker = CircuitBreaker(store, backend.name, threshold=breaker_threshold,
                                      cooldown=breaker_cooldown)
        self.remote = backend.remote

    def key(self, submission: Submission) -> str:
        """The submission's idempotency key on this backend."""
        return idempotency_key(submission, self.backend.fingerprint)

    def attempt(self, submission: Submission, key: str) -> SubmissionResult:
        """One attempt at the result of ``submission`` (see the module docstring).

        Raises:
            QhybridError: Classified; ``recovery`` says what a retry of this attempt will do.
        """
        self.log.begin(key)
        try:
            return self._attempt(submission, key)
        except QhybridError as exc:
            self.log.failed(key, exc)
            if exc.recovery is None:
                exc.recovery = "retry (re-attaches if the provider has the job)" if exc.transient \
                    else "none: fails fast"
            raise

    def _attempt(self, submission: Submission, key: str) -> SubmissionResult:
        row = self.store.ledger(key)
        job_id = None
        if row is not None and row.status in ("submitted", "done") and row.job_id:
            job_id = row.job_id
        elif row is not None and row.status == "submitting":
            # Only a job from this claim counts: an older one under the key had failed.
            job_id = self.backend.find(key, since=row.updated)
            if job_id is not None:
                self.store.submitted(key, job_id)
                self._open_job_lease(job_id)  # found after a crash: now this run's to close
        if job_id is not None:
            self.log.count("reattachments")
            return self._collect(key, job_id, fresh=False,
                                 recorded=row is not None and row.status == "done")
        return self._collect(key, self._submit(submission, key), fresh=True)

    def _submit(self, submission: Submission, key: str) -> str:
        charge = self.backend.estimate_qpu_seconds(submission)
        self.breaker.allow()
        if not self.store.claim(key, self.backend.name, submission.kind, self.flow_run_id,
                                owner=_OWNER, stale_after=_IN_FLIGHT_SECONDS,
                                tags=submission.tags, qpu_seconds=charge, budget=self.budget):
            row = self.store.ledger(key)
            if row is not None and row.job_id and row.status in ("submitted", "done"):
                self.log.count("reattachments")
                return row.job_id  # another process submitted it meanwhile
            raise TransportError(
                f"{self.backend.name}: another process is submitting this work; retry to "
                "re-attach to its job", provider_status="IN_FLIGHT_ELSEWHERE")
        try:
            job_id = self.backend.submit(submission, tag=key)
        except QhybridError as exc:
            # Refused (as formed, or over quota, offline): nothing ran, so nothing is charged.
            # Lost on the way (TransportError) it may have reached the provider: it stays.
            refused = charge if isinstance(exc, SubmissionError | BackendRejectedError) else 0.0
            self._failure(exc)
            if not exc.transient:
                self.store.finished(key, error=exc.to_dict(), refund=refused)
            elif refused:
                self.store.refund(key, refused)
            raise
        self.store.submitted(key, job_id)
        self.log.submitted(job_id, charge)
        self._open_job_lease(job_id)
        return job_id

    def _open_job_lease(self, job_id: str) -> None:
        if self.remote:
            self.store.open_lease(self.flow_run_id, self.backend.name, "job", job_id)
            self.log.count("leases_opened")

    def _collect(
        self, key: str, job_id: str, *, fresh: bool, recorded: bool = False
    ) -> SubmissionResult:
        try:
            result = self.backend.result(job_id)
        except QhybridError as exc:
            self._failure(exc)
            if not exc.transient:
                self.store.finished(key, error=exc.to_dict())
                self._close_job_lease(job_id, "failed")
            raise
        if fresh:  # only new work that went through the breaker says the backend takes work
            self.breaker.success()
        if not recorded:  # a re-attachment to a finished job has nothing new to write
            self.store.finished(key)
            self._close_job_lease(job_id, None)
        return result

    def _failure(self, exc: QhybridError) -> None:
        if self.breaker.failure(exc):
            self.log.count("breaker_trips")

    def _close_job_lease(self, job_id: str, note: str | None) -> None:
        if self.remote:  # local jobs finish at submission: nothing to lease
            self._close_lease(job_id, note)

    def _close_lease(
        self, provider_id: str, note: str | None = None, status: str = "closed"
    ) -> None:
        if self.store.close_lease(provider_id, status=status, note=note):
            self.log.count("leases_closed")  # only leases this run actually closed

    @contextmanager
    def mode(self, mode: Mode) -> Iterator[None]:
        """Run the submissions made inside in a Batch or Session, leased until it closes.

        The lease is closed when the block ends, or cancelled (with the Session or Batch) when
        it raises; a process killed outright leaves it open for :func:`release_leases`.
        """
        if mode == "single":
            yield
            return
        backend = self.backend
        if not isinstance(backend, SupportsModes):
            raise SubmissionError(f"{backend.name} has no {mode} mode", field="mode")
        provider_id = backend.open_mode(mode)
        self.store.open_lease(self.flow_run_id, self.backend.name, mode, provider_id)
        self.log.count("leases_opened")
        try:
            yield
        except BaseException as exc:
            # Failed, cancelled or timed out inside: cancel the Session/Batch and its queued jobs,
            # and re-raise the original error even if cancelling fails (the lease stays open).
            try:
                backend.close_mode(cancel=True)
            except QhybridError as close_error:
                exc.add_note(f"cancelling the {mode} failed: {close_error.message}")
            else:
                self._close_lease(provider_id, note=type(exc).__name__, status="cancelled")
            raise
        backend.close_mode()
        self._close_lease(provider_id)


Runner = Callable[[Submitter, Submission, str], SubmissionResult]


def attempt_once(submitter: Submitter, submission: Submission, key: str) -> SubmissionResult:
    """A runner without retries: a single attempt (tests, replays, benchmarks)."""
    return submitter.attempt(submission, key)


class BackendExecutor:
    """The executor the domain sees, sending every call through a :class:`Submitter`.

    Args:
        submitter: Idempotent submission to one backend.
        runner: Runs one part with its retry policy (a Prefect task in flows).
        precision: Target standard error of estimates; None for the backend's default.
        mitigation: Mitigation for every estimate sent through this executor.
        job_tags: Provider job tags for every submission sent through this executor that has
            none of its own (``qhybrid.core.provider_job_tags``).
    """

    def __init__(self, submitter: Submitter, runner: Runner = attempt_once, *,
                 precision: float | None = None, mitigation: MitigationSpec | None = None,
                 job_tags: tuple[str, ...] = ()) -> None:
        self.submitter, self.runner = submitter, runner
        self.precision, self.mitigation = precision, mitigation
        self.job_tags = job_tags
        self.name = submitter.backend.name

    @property
    def num_qubits(self) -> int | None:
        """The backend's qubits."""
        return self.submitter.backend.num_qubits

    def describe(self) -> dict[str, object]:
        """The backend's description."""
        return self.submitter.backend.describe()

    def run(self, submission: Submission) -> SubmissionResult:
        """Tag, split at the backend's limits, run every part, and join the results."""
        if self.job_tags and not submission.tags:
            submission = replace(submission, tags=self.job_tags)
        parts, shapes = split(submission, self.submitter.backend.limits)
        results = [self.runner(self.submitter, part, self.submitter.key(part)) for part in parts]
        return SubmissionResult.join(results, shapes)

    def estimate_with_stds(
        self, circuit: QuantumCircuit, observable: SparsePauliOp, points: np.ndarray, *, seed: int,
        mitigation: MitigationSpec | None = None,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
        """Expectation values, their standard errors and the provider's metadata (one PUB)."""
        result = self.run(Submission("estimate", (Pub(circuit, np.asarray(points), observable),),
                                     seed=seed, precision=self.precision,
                                     mitigation=mitigation or self.mitigation))
        return result.evs[0], result.stds[0], result.metadata

    def estimate_observables(
        self, circuit: QuantumCircuit, observables: Sequence[SparsePauliOp], points: np.ndarray,
        *, seed: int, mitigation: MitigationSpec | None = None, precision: float | None = None,
    ) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, object]]:
        """Every observable of ``circuit`` at ``points`` in one submission (one PUB each), with
        the same mitigation: values and standard errors per observable, and the metadata.
        ``precision`` (the executor's when None) is the target standard error."""
        result = self.run(Submission(
            "estimate", tuple(Pub(circuit, np.asarray(points), o) for o in observables),
            seed=seed, precision=precision or self.precision,
            mitigation=mitigation or self.mitigation))
        return result.evs, result.stds, result.metadata

    def estimate(
        self, circuit: QuantumCircuit, observable: SparsePauliOp, points: np.ndarray, *, seed: int
    ) -> np.ndarray:
        """Expectation values, one per row of ``points`` (one PUB)."""
        return self.estimate_with_stds(circuit, observable, points, seed=seed)[0]

    def sample(
        self, circuit: QuantumCircuit, points: np.ndarray, *, shots: int, seed: int
    ) -> list[Counts]:
        """Counts, one dict per row of ``points`` (one PUB)."""
        result = self.run(Submission("sample", (Pub(circuit, np.asarray(points)),),
                                     seed=seed, shots=shots))
        return result.counts[0]
