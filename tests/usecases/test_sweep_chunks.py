"""A sweep's chunk size: the pure choice from every limit (the backend's rows, memory, the
QPU budget left, the breaker and the device's queue), what real backends tell it, and a sweep
that is refused or sized by them before anything is submitted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

import qhybrid_usecases as usecases
from backends import BackendExecutor
from qhybrid.core import ExperimentSpec, RunOptions, Settings, SpecError, spec_from_mapping
from qhybrid.experiments import build_workload, load_instance
from qhybrid_usecases import DeviceState, Services
from qhybrid_usecases._sweep_points import BREAKER_CHUNK, LOCAL, QUEUE_WAITS

DEVICE = "ibm:fake_lagos"  # 7 qubits, a fake device in qiskit-ibm-runtime's local mode


def _choose(given: int | None = None, *, num_qubits: int = 6, observables: int = 2,
            max_rows: int = 10_000, memory_bytes: int = 2**30, count: int = 10**6,
            device: DeviceState = LOCAL) -> usecases.ChunkSize:
    return usecases.choose_chunk_size(given, num_qubits=num_qubits, observables=observables,
                                      max_rows=max_rows, memory_bytes=memory_bytes,
                                      count=count, device=device)


def test_a_remote_device_holds_no_statevector_so_memory_does_not_bind() -> None:
    local = _choose(num_qubits=20, memory_bytes=256 * 2**20)
    remote = _choose(num_qubits=20, memory_bytes=256 * 2**20, device=DeviceState(remote=True))
    assert local.size == 16 and "memory budget binds" in local.reason
    assert remote.size == 5_000 and "row limit binds" in remote.reason
    assert "(not applied: remote)" in remote.reason


@pytest.mark.parametrize("state", ["open", "half-open"])
def test_a_tripped_breaker_makes_the_chunk_small(state: str) -> None:
    chunk = _choose(device=DeviceState(remote=True, breaker=state, queue_depth=0))
    assert chunk.size == BREAKER_CHUNK
    assert f"the {state} breaker binds" in chunk.reason
    assert "queue 0 jobs" in chunk.reason


def test_behind_a_queue_the_small_chunk_grows_to_bound_the_waits() -> None:
    chunk = _choose(count=10_000, device=DeviceState(remote=True, breaker="open",
                                                     queue_depth=40))
    assert chunk.size == 10_000 // QUEUE_WAITS == 625
    assert "the open breaker and the queue depth bind" in chunk.reason
    closed = _choose(count=10_000, device=DeviceState(remote=True, queue_depth=40))
    assert closed.size == 5_000 and "queue 40 jobs" in closed.reason


def test_the_qpu_budget_refuses_a_sweep_it_cannot_pay_for() -> None:
    device = DeviceState(remote=True, qpu_seconds_per_point=0.5, qpu_seconds_left=100.0)
    with pytest.raises(SpecError) as info:
        _choose(count=300, device=device)
    assert info.value.field == "sweep.max_qpu_seconds"
    assert "pays for 200 of 300 points" in info.value.message
    assert "needs 150 s" in info.value.message and "100 s are left" in info.value.message
    with pytest.raises(SpecError, match="no QPU budget left"):
        _choose(count=300, device=DeviceState(remote=True, qpu_seconds_per_point=0.5,
                                              qpu_seconds_left=0.2))
    with pytest.raises(SpecError, match="pays for 200 of 300"):  # a given chunk size too
        _choose(10, count=300, device=device)
    fits = _choose(count=200, device=device)
    assert fits.size == 200 and "the point count and the QPU budget left bind" in fits.reason
    assert "QPU budget left 100 s / 0.5 s per point = 200" in fits.reason


def test_a_simulator_costs_no_qpu_time_whatever_the_budget() -> None:
    chunk = _choose(count=50, device=DeviceState(qpu_seconds_left=1e-9))
    assert chunk.size == 50 and "the point count binds" in chunk.reason


@given(num_qubits=st.integers(1, 30), observables=st.integers(1, 20),
       max_rows=st.integers(1, 20_000), memory_bytes=st.integers(1, 2**34),
       count=st.integers(1, 10**6), remote=st.booleans(),
       breaker=st.sampled_from(["closed", "open", "half-open"]),
       queue=st.none() | st.integers(0, 1_000),
       per_point=st.floats(0, 100), left=st.none() | st.floats(0, 1e7))
@hypothesis_settings(max_examples=300, deadline=None)
def test_every_chunk_fits_every_limit_that_applies(
        num_qubits: int, observables: int, max_rows: int, memory_bytes: int, count: int,
        remote: bool, breaker: str, queue: int | None, per_point: float,
        left: float | None) -> None:
    device = DeviceState(remote=remote, queue_depth=queue, breaker=breaker,
                         qpu_seconds_per_point=per_point, qpu_seconds_left=left)
    if left is not None and per_point * count > left:
        with pytest.raises(SpecError):
            _choose(num_qubits=num_qubits, observables=observables, max_rows=max_rows,
                    memory_bytes=memory_bytes, count=count, device=device)
        return
    chunk = _choose(num_qubits=num_qubits, observables=observables, max_rows=max_rows,
                    memory_bytes=memory_bytes, count=count, device=device)
    assert 1 <= chunk.size <= count
    assert chunk.size <= max(1, max_rows // observables)
    if not remote:
        assert chunk.size <= max(1, memory_bytes // (2**num_qubits * 16))
    if left is not None:
        assert chunk.size * per_point <= left
    if breaker != "closed":
        assert chunk.size <= max(BREAKER_CHUNK, -(-count // QUEUE_WAITS) if queue else 0)
    assert chunk.reason.startswith("chosen: ")
    assert f"{count} points" in chunk.reason and f"breaker {breaker}" in chunk.reason


def _spec(backend: str, count: int, **sweep: object) -> ExperimentSpec:
    return spec_from_mapping({
        "name": "qaoa-sweep-chunks", "version": "1.0.0", "family": {"kind": "qaoa-maxcut"},
        "dataset": {"path": "data/maxcut_3reg_6.json"},
        "gates": {"ideal": {"backend": backend}},
        "sweep": {"points": {"kind": "random", "count": count, "seed": 3}, **sweep}})


def _on(services: Services, backend: str) -> BackendExecutor:
    return services.executor(backend, transpiler_seed=0, flow_run_id=None)


def test_what_real_backends_tell_the_choice(settings: Settings) -> None:
    services = Services.open(settings)
    spec = _spec("aer", 4)
    workload = build_workload(spec.family, load_instance(settings.project_root
                                                         / spec.dataset.path))
    observables = list(workload.observables.values())
    aer = usecases.device_state(_on(services, "aer"), observables, workload.ansatz,
                                max_qpu_seconds=None)
    assert aer == DeviceState(remote=False, queue_depth=None, breaker="closed",
                              qpu_seconds_per_point=0.0, qpu_seconds_left=None)
    device = usecases.device_state(_on(services, DEVICE), observables, workload.ansatz,
                                   max_qpu_seconds=10.0)
    assert device.queue_depth == 0 and not device.remote  # local mode: nothing queued
    assert device.qpu_seconds_per_point > 0 and device.qpu_seconds_left == 10.0
    services.store.set_breaker(DEVICE, "open", 5, time.time(), 1, "down")
    assert usecases.device_state(_on(services, DEVICE), observables, workload.ansatz,
                                 max_qpu_seconds=None).breaker == "open"


def test_a_sweep_over_budget_is_refused_before_anything_is_submitted(
        settings: Settings, tmp_path: Path) -> None:
    services = Services.open(settings)
    run = usecases.open_run(_spec(DEVICE, 200, max_qpu_seconds=1.0), RunOptions(), services,
                            kind="run", flow_run_id=None)
    out = tmp_path / "over.parquet"
    with pytest.raises(SpecError, match="nothing was submitted") as info:
        usecases.sweep_points(run, services, out)
    assert info.value.field == "sweep.max_qpu_seconds"
    assert services.log.record().provider_submissions == 0
    assert services.store.ledger_counts() == {} and not out.exists()


def test_a_sweep_behind_a_tripped_breaker_runs_in_small_chunks(
        settings: Settings, tmp_path: Path) -> None:
    services = Services.open(settings)
    # Open since an hour: the cool-down is over, so the first chunk is the probe.
    services.store.set_breaker("aer", "open", 5, time.time() - 3600, 1, "down")
    run = usecases.open_run(_spec("aer", 40), RunOptions(), services, kind="run",
                            flow_run_id=None)
    outcome = usecases.sweep_points(run, services, tmp_path / "small.parquet")
    assert outcome.chunk.size == BREAKER_CHUNK and outcome.chunks == 3  # 16, 16, 8
    assert "the open breaker binds" in outcome.chunk.reason
    assert services.store.breaker("aer")[0] == "closed"  # the probe closed it


class _Stop(Exception):
    """Stops a sweep from its progress hook, as a kill would between two chunks."""


def test_a_resumed_sweep_keeps_the_cut_of_the_attempt_it_resumes(
        settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "resumed.parquet"
    first = Services.open(settings)
    first.store.set_breaker("aer", "open", 5, time.time() - 3600, 1, "down")
    run = usecases.open_run(_spec("aer", 40), RunOptions(), first, kind="run",
                            flow_run_id=None)

    def stop_after_two_chunks(done: int, total: int) -> None:
        if done >= 2 * BREAKER_CHUNK:
            raise _Stop

    with pytest.raises(_Stop):
        usecases.sweep_points(run, first, out, progress=stop_after_two_chunks)
    assert first.log.record().provider_submissions == 2
    assert usecases.plan_path(out).exists()
    # The probe closed the breaker: a sweep deciding afresh would now cut 40 points otherwise.
    assert first.store.breaker("aer")[0] == "closed"
    fresh = usecases.sweep_points(
        usecases.open_run(_spec("aer", 40), RunOptions(), first, kind="run", flow_run_id=None),
        Services.open(settings), tmp_path / "elsewhere.parquet")
    assert fresh.chunk.size != BREAKER_CHUNK

    again = Services.open(settings)
    resumed = usecases.sweep_points(
        usecases.open_run(_spec("aer", 40), RunOptions(), again, kind="run", flow_run_id=None),
        again, out)
    assert resumed.chunk.size == BREAKER_CHUNK and resumed.chunks == 3
    assert "kept from an interrupted attempt" in resumed.chunk.reason
    record = again.log.record()
    assert (record.reattachments, record.provider_submissions) == (2, 1)
    assert not usecases.plan_path(out).exists()  # the sweep ended: its plan is gone


def test_a_plan_of_another_sweep_is_not_taken(tmp_path: Path) -> None:
    out = tmp_path / "sweep.parquet"
    usecases.keep_plan(out, "a" * 64, usecases.ChunkSize(16, "the open breaker binds"))
    assert usecases.resumed_chunk(out, "b" * 64) is None
    kept = usecases.resumed_chunk(out, "a" * 64)
    assert kept is not None and kept.size == 16
    usecases.plan_path(out).write_text("{not json")
    assert usecases.resumed_chunk(out, "a" * 64) is None
