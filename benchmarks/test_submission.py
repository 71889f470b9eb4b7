"""The cost of the execution plane per submission, layer by layer, on ideal Aer.

Group ``submission``: the same 100 distinct small sampling submissions (a 2-qubit parametrised
circuit with measurements, 16 shots, ``theta = 0.01 * i`` and seed ``i`` for ``i`` in
``range(100)``) through each layer in turn:

* ``test_submission_engine_direct``: ``open_engine("aer").run(submission)``, the simulator alone
  (no key, no store, no job).
* ``test_submission_submitter_memory``: ``open_executor("aer")`` on an in-memory state store
  with the ``attempt_once`` runner (idempotency key, ledger, breaker, local job, result read
  back from the store).
* ``test_submission_submitter_sqlite``: the same on a SQLite file store.
* ``test_submission_prefect[task_per_submission]``: the same on a SQLite file store, inside a
  Prefect flow, every submission a ``submit-job`` task run, as a remote provider's are (and a
  local engine's under a tag concurrency limit) in ``qhybrid run`` and ``qhybrid promote``.
* ``test_submission_prefect[prefect_runner]``: the same with ``tasks.prefect_runner``, as a
  local engine's are there: each submission's first attempt without a task run.
* ``test_submission_reattach_sqlite``: the 100 submissions a second time on a SQLite file store
  that already holds them: every one re-attaches to its stored job, none executes.

Every round opens a new executor on a new store (a new file for SQLite), so in the first four
nothing re-attaches; each round's simulator has the circuit transpiled beforehand, and one
untimed warm-up round runs first. Divide a mean by 100 for the cost of one submission.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest
from qiskit.circuit import Parameter, QuantumCircuit

from backends import (
    AerBackend,
    BackendExecutor,
    ExecutionLog,
    Pub,
    Runner,
    StateStore,
    Submission,
    SubmissionResult,
    open_engine,
    open_executor,
)
from qhybrid.core import Settings

N = 100
SHOTS = 16
TRANSPILER_SEED = 1
GROUP = "submission"
ROUNDS = 5


def _circuit() -> QuantumCircuit:
    theta = Parameter("theta")
    circuit = QuantumCircuit(2, 2)
    circuit.ry(theta, 0)
    circuit.cx(0, 1)
    circuit.measure([0, 1], [0, 1])
    return circuit


@pytest.fixture(scope="module")
def circuit() -> QuantumCircuit:
    return _circuit()


@pytest.fixture(scope="module")
def submissions(circuit: QuantumCircuit) -> list[Submission]:
    """100 distinct submissions: distinct parameter values and seeds, hence distinct keys."""
    return [Submission("sample", (Pub(circuit, np.array([[0.01 * i]])),), seed=i, shots=SHOTS)
            for i in range(N)]


@pytest.fixture(scope="module")
def engine(tmp_settings: Settings, circuit: QuantumCircuit) -> AerBackend:
    """Ideal Aer with the circuit already transpiled."""
    aer = open_engine("aer", tmp_settings, transpiler_seed=TRANSPILER_SEED)
    assert isinstance(aer, AerBackend)
    aer.prepare(circuit)
    return aer


@pytest.fixture(scope="module")
def reference(engine: AerBackend, submissions: list[Submission]) -> list[dict[str, int]]:
    """The counts of every submission, straight from the simulator (untimed; also warms it)."""
    return [engine.run(s).counts[0][0] for s in submissions]


@pytest.fixture(scope="module")
def store_urls(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], str]:
    """A new SQLite file URL on every call."""
    folder = tmp_path_factory.mktemp("submission-stores")
    numbers = itertools.count()
    return lambda: f"sqlite:///{folder / f'state-{next(numbers)}.db'}"


def fresh_executor(settings: Settings, circuit: QuantumCircuit, *, store: StateStore | None = None,
                   **options) -> BackendExecutor:
    """A new executor on ``store`` (a new in-memory one when None), circuit transpiled."""
    executor = open_executor("aer", settings, transpiler_seed=TRANSPILER_SEED, store=store,
                             log=ExecutionLog(), **options)
    executor.submitter.backend.engine.prepare(circuit)
    return executor


def run_all(run: Callable[[Submission], SubmissionResult],
            submissions: list[Submission]) -> list[dict[str, int]]:
    return [run(s).counts[0][0] for s in submissions]


def check(counts: list[dict[str, int]], reference: list[dict[str, int]]) -> None:
    assert len(counts) == N
    assert all(sum(c.values()) == SHOTS for c in counts)
    assert counts == reference, "a layer changed the counts of a seeded submission"


def executed(opened: list[BackendExecutor], benchmark) -> None:
    """Every round sent all 100 submissions to the simulator and re-attached none."""
    assert opened
    for executor in opened:
        record = executor.submitter.log.record()
        assert record.provider_submissions == record.distinct_jobs == N
        assert record.reattachments == 0 and not record.failures_by_class
    benchmark.extra_info |= {"submissions": N, "provider_submissions": N, "reattachments": 0}


def per_submission(benchmark) -> None:
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None:
        benchmark.extra_info["ms_per_submission_mean"] = round(stats.mean / N * 1000, 3)


@pytest.mark.benchmark(group=GROUP)
def test_submission_engine_direct(benchmark, engine, submissions, reference):
    counts = benchmark.pedantic(run_all, args=(engine.run, submissions),
                                rounds=ROUNDS, iterations=1, warmup_rounds=1)
    check(counts, reference)
    benchmark.extra_info |= {"submissions": N}
    per_submission(benchmark)


@pytest.mark.benchmark(group=GROUP)
def test_submission_submitter_memory(benchmark, tmp_settings, circuit, submissions, reference):
    opened: list[BackendExecutor] = []

    def setup():
        opened.append(fresh_executor(tmp_settings, circuit))
        return (opened[-1].run, submissions), {}

    counts = benchmark.pedantic(run_all, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    check(counts, reference)
    executed(opened, benchmark)
    per_submission(benchmark)


@pytest.mark.benchmark(group=GROUP)
def test_submission_submitter_sqlite(benchmark, tmp_settings, circuit, submissions, reference,
                                     store_urls):
    opened: list[BackendExecutor] = []

    def setup():
        opened.append(fresh_executor(tmp_settings, circuit, store=StateStore(store_urls())))
        return (opened[-1].run, submissions), {}

    counts = benchmark.pedantic(run_all, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    check(counts, reference)
    executed(opened, benchmark)
    for executor in opened:
        assert executor.submitter.store.ledger_counts() == {"done": N}
    per_submission(benchmark)


def task_per_submission(settings: Settings) -> Runner:
    """Every submission a ``submit-job`` task run, as a remote provider's (or one under a tag
    concurrency limit) is in :func:`tasks.prefect_runner`."""
    from prefect.utilities.annotations import quote

    from tasks.submission import submit_job

    job = submit_job.with_options(task_run_name="submit-job backend:aer",
                                  retries=settings.submission_retries)
    return lambda submitter, submission, key: job(quote(submitter), quote(submission), key)


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("runner", ["task_per_submission", "prefect_runner"])
def test_submission_prefect(benchmark, prefect_harness, tmp_settings, circuit, submissions,
                            reference, store_urls, runner):
    from prefect import flow
    from prefect.runtime import flow_run

    from tasks import prefect_runner

    opened: list[BackendExecutor] = []
    make = task_per_submission if runner == "task_per_submission" else prefect_runner

    def setup():
        # As open_records does: the settings' retries, the flow run owning the submissions.
        opened.append(fresh_executor(tmp_settings, circuit, store=StateStore(store_urls()),
                                     runner=make(tmp_settings), flow_run_id=flow_run.get_id()))
        return (opened[-1].run, submissions), {}

    @flow(name="bench-submissions", validate_parameters=False)
    def rounds_in_one_flow_run() -> list[dict[str, int]]:
        # Timed inside the flow run: only the submissions (task runs), not the flow's start.
        return benchmark.pedantic(run_all, setup=setup, rounds=3, iterations=1, warmup_rounds=1)

    counts = rounds_in_one_flow_run()
    check(counts, reference)
    executed(opened, benchmark)
    assert all(e.submitter.flow_run_id for e in opened)
    per_submission(benchmark)


@pytest.mark.benchmark(group=GROUP)
def test_submission_reattach_sqlite(benchmark, tmp_settings, circuit, submissions, reference,
                                    store_urls):
    reattached: list[BackendExecutor] = []

    def setup():
        store = StateStore(store_urls())
        first = fresh_executor(tmp_settings, circuit, store=store)
        check(run_all(first.run, submissions), reference)  # untimed: the first pass executes
        # A new executor on the same store, as a restarted flow would open.
        reattached.append(fresh_executor(tmp_settings, circuit, store=store))
        return (reattached[-1].run, submissions), {}

    counts = benchmark.pedantic(run_all, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    check(counts, reference)
    for executor in reattached:
        record = executor.submitter.log.record()
        assert record.provider_submissions == 0 and record.reattachments == N
        assert executor.submitter.store.count_local_jobs() == N  # nothing paid twice
    benchmark.extra_info |= {"submissions": N, "provider_submissions": 0, "reattachments": N}
    per_submission(benchmark)
