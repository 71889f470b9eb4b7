"""The execution plane: idempotency keys, splitting, re-attachment, breakers, strict parity."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from backends import (
    BackendLimits,
    ExecutionLog,
    Pub,
    StateStore,
    Submission,
    Submitter,
    idempotency_key,
    open_backend,
    open_executor,
    split,
)
from qhybrid.core import (
    BackendRejectedError,
    BreakerOpenError,
    MitigationSpec,
    QaoaMaxcutFamily,
    Settings,
    SpecError,
    SubmissionError,
    TransportError,
    VqeFamily,
    load_spec,
    spec_from_mapping,
)
from qhybrid.experiments import build_workload, h2_hamiltonian, random_regular_graph

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def vqe():
    return build_workload(VqeFamily(), h2_hamiltonian())


@pytest.fixture(scope="module")
def qaoa():
    graph = random_regular_graph(6, 3, seed=1, triangle_free=False, weighted=False)
    return build_workload(QaoaMaxcutFamily(), graph)


def _estimate(workload, points: np.ndarray, seed: int = 1, **kw: object) -> Submission:
    return Submission("estimate", (Pub(workload.ansatz, points, workload.observable),),
                      seed=seed, **kw)  # type: ignore[arg-type]


# -- idempotency key ---------------------------------------------------------------------------

def test_key_is_deterministic_and_covers_every_input(vqe, qaoa) -> None:
    point = np.array([[0.1, 0.2, 0.3, 0.4]])
    base = idempotency_key(_estimate(vqe, point), "aer")
    assert base == idempotency_key(_estimate(vqe, point.copy()), "aer")
    variants = [
        idempotency_key(_estimate(vqe, point + 1e-12), "aer"),
        idempotency_key(_estimate(vqe, point, seed=2), "aer"),
        idempotency_key(_estimate(vqe, point), "ibm:fake_manila"),
        idempotency_key(_estimate(vqe, point, precision=0.01), "aer"),
        idempotency_key(_estimate(vqe, point, mitigation=MitigationSpec(readout=True)), "aer"),
        idempotency_key(Submission("sample", (Pub(vqe.measured, point),), seed=1, shots=10), "aer"),
        idempotency_key(Submission("sample", (Pub(vqe.measured, point),), seed=1, shots=11), "aer"),
        idempotency_key(_estimate(qaoa, np.array([[0.1, 0.2]])), "aer"),
    ]
    assert len({base, *variants}) == 1 + len(variants)


# -- splitting at backend limits ---------------------------------------------------------------

@hsettings(max_examples=25, deadline=None)
@given(rows=st.lists(st.integers(1, 9), min_size=1, max_size=5), max_pubs=st.integers(1, 3),
       max_rows=st.integers(1, 7))
def test_split_respects_limits_and_keeps_order(rows: list[int], max_pubs: int,
                                               max_rows: int) -> None:
    from qiskit.circuit import QuantumCircuit

    circuit = QuantumCircuit(1)
    pubs = tuple(Pub(circuit, np.arange(r, dtype=float)[:, None] + 100 * i)
                 for i, r in enumerate(rows))
    parts, shapes = split(Submission("sample", pubs, seed=1, shots=1),
                          BackendLimits(max_pubs, max_rows))
    assert all(len(p.pubs) <= max_pubs and sum(x.rows for x in p.pubs) <= max_rows for p in parts)
    flat = np.concatenate([x.points for p in parts for x in p.pubs])
    assert np.array_equal(flat, np.concatenate([p.points for p in pubs]))
    assert [sum(s) for s in shapes] == rows


def test_split_respects_the_payload_limit(vqe) -> None:
    from backends._protocol import _payload

    points = np.random.default_rng(0).uniform(-3, 3, size=(40, 4))
    pub = Pub(vqe.ansatz, points, vqe.observable)
    fixed, per_row = _payload(pub)
    limit = fixed + 10 * per_row  # room for 10 rows per job
    parts, shapes = split(Submission("estimate", (pub, pub), seed=1),
                          BackendLimits(max_bytes=limit))
    assert shapes == [[10, 10, 10, 10]] * 2 and len(parts) == 8
    with pytest.raises(SubmissionError, match="exceeds"):
        split(Submission("estimate", (pub,), seed=1), BackendLimits(max_bytes=fixed))


def test_a_split_submission_gives_the_same_result(vqe) -> None:
    points = np.random.default_rng(0).uniform(-3, 3, size=(23, 4))
    whole = open_executor("aer", Settings(), transpiler_seed=1)
    limited = open_executor("aer", Settings(), transpiler_seed=1)
    limited.submitter.backend.limits = BackendLimits(max_pubs=1, max_rows=5)
    assert np.allclose(whole.estimate(vqe.ansatz, vqe.observable, points, seed=3),
                       limited.estimate(vqe.ansatz, vqe.observable, points, seed=3))
    assert limited.submitter.log.provider_submissions == 5  # ceil(23 / 5)


def _one_local_submission(workload):
    """An in-memory store, Aer behind it, a submitter, one estimate submission and its key."""
    store = StateStore("sqlite://")
    backend = open_backend("aer", Settings(), transpiler_seed=1, store=store)
    submitter = Submitter(backend, store, ExecutionLog())
    submission = _estimate(workload, np.array([[0.1, 0.2, 0.3, 0.4]]))
    return store, backend, submitter, submission, submitter.key(submission)


# -- never pay twice -----------------------------------------------------------------------------

def test_a_repeated_submission_reattaches(tmp_path: Path, vqe) -> None:
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    log = ExecutionLog()
    first = open_executor("aer", Settings(), transpiler_seed=1, store=store, log=log)
    again = open_executor("aer", Settings(), transpiler_seed=1, store=store, log=log)
    point = np.array([[0.1, 0.2, 0.3, 0.4]])
    assert first.sample(vqe.measured, point, shots=100, seed=5) == again.sample(
        vqe.measured, point, shots=100, seed=5)
    assert store.count_local_jobs() == 1 and log.reattachments == 1
    assert log.record().provider_submissions == 1 and log.record().distinct_jobs == 1


def test_a_submit_interrupted_before_the_job_id_was_written_finds_the_job(vqe) -> None:
    store, backend, submitter, submission, key = _one_local_submission(vqe)
    # The crash window: intent written, provider accepted the job, its id never recorded.
    store.claim(key, backend.name, "estimate", None, owner="crashed-process", stale_after=30)
    backend.submit(submission, tag=key)
    result = submitter.attempt(submission, key)
    assert result.evs[0].shape == (1,)
    assert store.count_local_jobs() == 1 and submitter.log.reattachments == 1
    assert store.ledger(key).status == "done"


def test_work_another_process_is_submitting_is_left_to_it_then_reattached(vqe) -> None:
    store, backend, submitter, submission, key = _one_local_submission(vqe)
    assert store.claim(key, backend.name, "estimate", None, owner="other-process", stale_after=30)
    with pytest.raises(TransportError) as info:  # transient: Prefect retries it
        submitter.attempt(submission, key)
    assert info.value.provider_status == "IN_FLIGHT_ELSEWHERE" and store.count_local_jobs() == 0
    # The other process gets its job id; the retry re-attaches to that job.
    store.submitted(key, backend.submit(submission, tag=key))
    assert submitter.attempt(submission, key).evs[0].shape == (1,)
    assert store.count_local_jobs() == 1 and submitter.log.reattachments == 1


_CRASHER = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from backends import LocalJobs, open_executor, StateStore
    from qhybrid.core import Settings, VqeFamily
    from qhybrid.experiments import build_workload, h2_hamiltonian

    if sys.argv[2] == "crash":
        # Die by SIGKILL at the first poll: after the job id is in the ledger, before any result.
        LocalJobs.result = lambda self, job_id: os.kill(os.getpid(), signal.SIGKILL)
    w = build_workload(VqeFamily(), h2_hamiltonian())
    store = StateStore(sys.argv[1])
    ex = open_executor("ibm:fake_manila", Settings(), transpiler_seed=1, store=store)
    counts = ex.sample(w.measured, np.array([[0.1, 0.2, 0.3, 0.4]]), shots=200, seed=9)[0]
    log = ex.submitter.log
    print(sum(counts.values()), log.provider_submissions, log.reattachments)
""")


def test_kill_between_submission_and_result_then_rerun_pays_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    script = tmp_path / "crasher.py"
    script.write_text(_CRASHER)
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "MLFLOW_DISABLE_TELEMETRY": "true"}
    crashed = subprocess.run([sys.executable, str(script), url, "crash"], capture_output=True,
                             text=True, cwd=REPO, env=env, timeout=300)
    assert crashed.returncode == -9, crashed.stderr
    store = StateStore(url)
    assert store.count_local_jobs() == 1 and store.ledger_counts() == {"submitted": 1}
    rerun = subprocess.run([sys.executable, str(script), url, "normal"], capture_output=True,
                           text=True, cwd=REPO, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    shots, submissions, reattachments = map(int, rerun.stdout.split())
    assert (shots, submissions, reattachments) == (200, 0, 1)
    assert store.count_local_jobs() == 1 and store.ledger_counts() == {"done": 1}


# -- circuit breaker -----------------------------------------------------------------------------

def test_breaker_opens_fails_fast_half_opens_and_is_shared(tmp_path: Path, vqe) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    flaky = Settings(faults="transport=1,seed=1", breaker_threshold=2, breaker_cooldown_seconds=0.5)
    executor = open_executor("aer", flaky, transpiler_seed=1, store=StateStore(url))
    point = np.array([[0.1, 0.2, 0.3, 0.4]])
    for seed in (1, 2):
        with pytest.raises(TransportError):
            executor.estimate(vqe.ansatz, vqe.observable, point, seed=seed)
    # Another process (another store object on the same database) sees the open breaker.
    healthy = open_executor("aer", Settings(breaker_cooldown_seconds=0.5), transpiler_seed=1,
                            store=StateStore(url))
    with pytest.raises(BreakerOpenError) as info:
        healthy.estimate(vqe.ansatz, vqe.observable, point, seed=3)
    assert not info.value.transient and info.value.recovery == "none: fails fast"
    assert executor.submitter.log.breaker_trips == 1
    time.sleep(0.6)
    assert healthy.estimate(vqe.ansatz, vqe.observable, point, seed=3).shape == (1,)
    assert healthy.submitter.breaker.state == "closed"


def test_a_maintenance_signal_opens_the_breaker_at_once(vqe) -> None:
    executor = open_executor("aer", Settings(faults="maintenance=1,seed=1", breaker_threshold=50),
                             transpiler_seed=1)
    with pytest.raises(BackendRejectedError, match="maintenance"):
        executor.estimate(vqe.ansatz, vqe.observable, np.array([[0.1, 0.2, 0.3, 0.4]]), seed=1)
    assert executor.submitter.breaker.state == "open"


# -- strict parity -------------------------------------------------------------------------------

@pytest.mark.parametrize(("backend", "mitigation", "field"), [
    ("aer", MitigationSpec(readout=True), "mitigation"),
    ("aer-noisy:fake_manila", MitigationSpec(readout=True, twirling=True), "mitigation.twirling"),
])
def test_mitigation_on_a_backend_that_cannot_apply_it_is_refused(
        vqe, backend: str, mitigation: MitigationSpec, field: str) -> None:
    executor = open_executor(backend, Settings(), transpiler_seed=1)
    with pytest.raises(SubmissionError) as info:
        executor.estimate_with_stds(vqe.ansatz, vqe.observable, np.array([[0.1, 0.2, 0.3, 0.4]]),
                                    seed=1, mitigation=mitigation)
    assert info.value.field == field
    assert executor.submitter.log.provider_submissions == 0


@pytest.mark.parametrize(("hardware", "field"), [
    ({"backend": "aer", "mitigation": {"readout": True}}, "gates.hardware"),
    ({"backend": "aer-noisy:fake_manila", "mitigation": {"readout": True, "twirling": True}},
     "gates.hardware"),
    ({"backend": "aer", "noise": {"readout": {"p1_given_0": 0.1, "p0_given_1": 0.1}},
      "mitigation": {"zne": True, "dynamical_decoupling": True}}, "gates.hardware"),
    ({"backend": "aer", "mode": "session"}, "gates.hardware"),
    ({"backend": "ibm:fake_manila", "mitigation": {}}, "gates.hardware.mitigation"),
    ({"backend": "ibm:fake_manila", "fallback": ["ibm:fake_manila"]}, "gates.hardware"),
    ({"backend": "ibm:fake_manila", "fallback": ["quantum-cloud:x"]},
     "gates.hardware.fallback"),
])
def test_spec_refuses_options_a_backend_would_ignore(hardware: dict, field: str) -> None:
    data = load_spec(REPO / "specs" / "vqe-h2.yaml").model_dump(mode="json")
    data["gates"]["hardware"] = hardware
    with pytest.raises(SpecError) as info:
        spec_from_mapping(data)
    assert info.value.field == field
    if hardware.get("backend", "").startswith("aer") and "mitigation" in hardware:
        technique = next((t for t in ("twirling", "dynamical_decoupling")
                          if hardware["mitigation"].get(t)), None)
        assert f"mitigation.{technique}:" in info.value.message if technique else \
            "nothing to mitigate" in info.value.message


@pytest.mark.parametrize("hardware", [
    {"backend": "aer-noisy:fake_manila", "mitigation": {"readout": True, "zne": True}},
    {"backend": "aer", "noise": {"device": "fake_manila"}, "mitigation": {"zne": True}},
])
def test_spec_accepts_readout_and_zne_on_a_noisy_aer_target(hardware: dict) -> None:
    data = load_spec(REPO / "specs" / "vqe-h2.yaml").model_dump(mode="json")
    data["gates"]["hardware"] = hardware
    mitigation = spec_from_mapping(data).gates.hardware.mitigation
    assert mitigation is not None and mitigation.techniques() == tuple(
        t for t in ("readout", "zne") if hardware["mitigation"].get(t))


def test_ibm_local_mode_applies_mitigation_and_reports_it(vqe) -> None:
    executor = open_executor("ibm:fake_manila", Settings(), transpiler_seed=1)
    point = np.array([[0.1, 0.2, 0.3, 0.4]])
    plain, _, meta_plain = executor.estimate_with_stds(vqe.ansatz, vqe.observable, point, seed=4)
    mitigated, _, meta = executor.estimate_with_stds(
        vqe.ansatz, vqe.observable, point, seed=4,
        mitigation=MitigationSpec(readout=True, dynamical_decoupling=True))
    assert meta_plain["mitigation"] is None
    applied = meta["mitigation"]
    assert applied["resilience"]["measure_mitigation"] is True
    assert applied["dynamical_decoupling"]["enable"] is True
    assert plain[0] != mitigated[0]


def test_zne_and_twirling_are_applied_in_local_mode(vqe) -> None:
    executor = open_executor("ibm:fake_manila", Settings(), transpiler_seed=1)
    point = np.array([[0.1, 0.2, 0.3, 0.4]])
    zne = MitigationSpec(zne=True, zne_noise_factors=(1.0, 3.0), twirling=True,
                         twirling_randomizations=4)
    value, _stds, meta = executor.estimate_with_stds(vqe.ansatz, vqe.observable, point, seed=4,
                                                     mitigation=zne)
    applied = meta["mitigation"]
    assert applied["resilience"]["zne_mitigation"] is True
    assert applied["resilience"]["zne"]["noise_factors"] == [1.0, 3.0]
    assert applied["twirling"]["enable_gates"] is True
    assert applied["twirling"]["num_randomizations"] == 4
    assert np.isfinite(value[0])
    # The pre-flight QPU estimate accounts for the folded circuits.
    backend = executor.submitter.backend
    plain = backend.estimate_qpu_seconds(_estimate(vqe, point))
    assert backend.estimate_qpu_seconds(_estimate(vqe, point, mitigation=zne)) > plain > 0


def test_key_covers_the_transpilation(vqe) -> None:
    submission = _estimate(vqe, np.array([[0.1, 0.2, 0.3, 0.4]]))
    keys = {open_executor("aer-noisy:fake_manila", Settings(),
                          transpiler_seed=seed).submitter.key(submission)
            for seed in (1, 2)}
    assert len(keys) == 2


def test_half_open_lets_one_probe_through_and_reattachment_does_not_close_it(
        tmp_path: Path, vqe) -> None:
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    settings = Settings(breaker_threshold=1, breaker_cooldown_seconds=0.2)
    executor = open_executor("aer", settings, transpiler_seed=1, store=store)
    point = np.array([[0.1, 0.2, 0.3, 0.4]])
    executor.estimate(vqe.ansatz, vqe.observable, point, seed=1)  # a finished job to re-attach to
    breaker = executor.submitter.breaker
    breaker.failure(TransportError("down"))
    assert breaker.state == "open"
    # Re-attaching to a finished job is allowed while open and does not close the breaker.
    executor.estimate(vqe.ansatz, vqe.observable, point, seed=1)
    assert breaker.state == "open"
    time.sleep(0.25)
    breaker.allow()  # the probe
    assert breaker.state == "half-open"
    with pytest.raises(BreakerOpenError, match="a probe is in flight"):
        breaker.allow()
    breaker.success()
    assert breaker.state == "closed"


def test_an_old_failed_job_under_the_key_is_not_taken_for_the_new_one(
        vqe, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("backends._submit._IN_FLIGHT_SECONDS", 0.0)  # the claimant is long dead
    store, backend, submitter, submission, key = _one_local_submission(vqe)
    store.put_local_job("local-old", backend.name, key, "ERROR", None,
                        '{"error": "ExecutionError", "message": "old failure"}')
    time.sleep(0.01)
    store.claim(key, backend.name, "estimate", None, owner="crashed-process", stale_after=30)
    assert submitter.attempt(submission, key).evs[0].shape == (1,)
    assert store.count_local_jobs() == 2 and store.ledger(key).status == "done"


def test_released_job_leases_mark_their_keys_failed(vqe) -> None:
    from backends import release_leases

    store = StateStore("sqlite://")
    backend = open_backend("aer", Settings(), transpiler_seed=1, store=store)
    store.claim("k", backend.name, "sample", "run-1", owner="me", stale_after=30)
    store.submitted("k", "job-1")
    store.open_lease("run-1", backend.name, "job", "job-1")
    outcomes = release_leases(store, "run-1", lambda _name: backend, reason="flow cancelled")
    assert [o.released for o in outcomes] == [True]
    assert store.ledger("k").status == "failed"  # a rerun submits afresh, not re-attaches
