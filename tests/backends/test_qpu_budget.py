"""The QPU budget (``QHYBRID_QPU_BUDGET_*``): every submission that charges QPU seconds must fit
in what is left, on SQLite and on PostgreSQL, with two claimants at once, and through an executor
on a fake IBM device; simulators are never charged."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import backends._store as store_module
from backends import StateStore, open_executor
from backends._store import QpuBudget
from qhybrid.core import QhybridError, QpuBudgetError, Settings, VqeFamily
from qhybrid.experiments import build_workload, h2_hamiltonian
from tests.backends.test_store import postgres_url  # noqa: F401 - the fixture, shared

BUDGET = QpuBudget(seconds=10.0, window_seconds=3600.0)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    if request.param == "sqlite":
        return StateStore(f"sqlite:///{tmp_path}/state.db")
    store = StateStore(request.getfixturevalue("postgres_url"))
    with store.engine.begin() as conn:  # one database per module: start each test empty
        conn.exec_driver_sql("DELETE FROM submissions")
    return store


def _claim(store: StateStore, key: str, seconds: float, *, backend: str = "ibm:fake_x",
           owner: str = "o") -> bool:
    return store.claim(key, backend, "sample", None, owner=owner, stale_after=30,
                       qpu_seconds=seconds, budget=BUDGET)


def test_claims_are_charged_until_the_budget_is_spent(store: StateStore) -> None:
    assert _claim(store, "a", 6.0)
    with pytest.raises(QpuBudgetError) as info:
        _claim(store, "b", 5.0)
    error = info.value
    assert error.field == "QHYBRID_QPU_BUDGET_SECONDS" and not error.transient
    assert "needs 5 s" in error.message and "4 s of 10 s are left" in error.message
    assert "last 1 hours" in error.message and "nothing was sent" in error.message
    assert store.ledger("b") is None  # refused: the claim was rolled back
    assert _claim(store, "c", 4.0)  # exactly what is left
    assert _claim(store, "sim", 0.0, backend="aer")  # a simulator is never charged nor refused
    assert store.qpu_spent(0.0) == pytest.approx(10.0)

    # Failed before its job reached the provider: claimed again, charged once.
    store.finished("a", error={"error": "TransportError", "message": "lost"})
    assert _claim(store, "a", 6.0)
    assert store.qpu_spent(0.0) == pytest.approx(10.0)
    # The provider refused c: its charge is taken back.
    store.finished("c", error={"error": "SubmissionError", "message": "no"}, refund=4.0)
    assert store.qpu_spent(0.0) == pytest.approx(6.0)
    # a's job reached the provider and failed (it may have run): a new attempt adds to it.
    store.submitted("a", "job-a")
    store.finished("a", error={"error": "ExecutionError", "message": "failed on the device"})
    assert _claim(store, "a", 3.0)
    assert store.qpu_spent(0.0) == pytest.approx(9.0)
    with pytest.raises(QpuBudgetError, match="1 s of 10 s are left"):
        _claim(store, "d", 2.0)
    store.refund("a", 3.0)  # the new attempt was refused over quota (transient): 6 s stay
    assert store.qpu_spent(0.0) == pytest.approx(6.0)


def test_a_claim_that_is_not_taken_charges_nothing_and_is_not_refused(store: StateStore) -> None:
    assert _claim(store, "a", 9.0, owner="first")
    # Another process is submitting a: not taken, so not checked against the budget either,
    # even by a process whose budget is already exceeded.
    assert not store.claim("a", "ibm:fake_x", "sample", None, owner="second", stale_after=30,
                           qpu_seconds=9.0, budget=QpuBudget(seconds=1.0, window_seconds=60))
    assert store.qpu_spent(0.0) == pytest.approx(9.0)


def test_charges_older_than_the_window_no_longer_count(store: StateStore) -> None:
    assert _claim(store, "old", 8.0)
    with pytest.raises(QpuBudgetError):
        _claim(store, "new", 8.0)
    with store.engine.begin() as conn:  # the first claim, two hours ago
        conn.execute(store_module.SUBMISSIONS.update().values(charged_at=time.time() - 7200))
    assert _claim(store, "new", 8.0)
    assert store.qpu_spent(time.time() - BUDGET.window_seconds) == pytest.approx(8.0)
    assert store.qpu_spent(0.0) == pytest.approx(16.0)
    # The old key, failed, claimed again now: charged now, inside the window.
    store.finished("old", error={"error": "TransportError", "message": "lost"})
    with pytest.raises(QpuBudgetError):
        _claim(store, "old", 8.0)


def test_two_claims_for_the_last_seconds_at_once_one_is_refused(
        store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each claimant, once it has written its claim and summed the window, waits for the other
    # to get there too. Serialised claims never both do: the first goes on after the wait,
    # commits, and the second sums with it. Unserialised, both would be taken and charged.
    both_summed = threading.Barrier(2)
    summed = store_module._spent

    def sum_then_wait(*args: object) -> float:
        spent = summed(*args)  # type: ignore[arg-type]
        # Broken: the other claimant is waiting for this one's transaction, as it should.
        with contextlib.suppress(threading.BrokenBarrierError):
            both_summed.wait(timeout=3)
        return spent

    monkeypatch.setattr(store_module, "_spent", sum_then_wait)
    outcomes: dict[str, object] = {}

    def claim(key: str) -> None:
        try:
            outcomes[key] = _claim(store, key, 6.0, owner=key)
        except QpuBudgetError as exc:
            outcomes[key] = exc

    threads = [threading.Thread(target=claim, args=(key,)) for key in ("p", "q")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(map(repr, outcomes.values()))[-1] == "True"
    assert sorted(type(o).__name__ for o in outcomes.values()) == ["QpuBudgetError", "bool"]
    assert store.qpu_spent(0.0) == pytest.approx(6.0)


@pytest.fixture(scope="module")
def vqe():
    return build_workload(VqeFamily(), h2_hamiltonian())


def test_an_executor_on_a_fake_device_stops_at_the_budget_and_sends_nothing_more(
        tmp_path: Path, vqe) -> None:
    point = np.array([[0.1, 0.2, 0.3, 0.4]])
    probe = open_executor("ibm:fake_manila", Settings(), transpiler_seed=1)
    probe.sample(vqe.measured, point, shots=200, seed=1)
    charge = probe.submitter.log.qpu_seconds  # the device's estimate for one such submission
    assert charge > 0

    settings = Settings(qpu_budget_seconds=1.5 * charge)
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    device = open_executor("ibm:fake_manila", settings, transpiler_seed=1, store=store)
    first = device.sample(vqe.measured, point, shots=200, seed=1)
    with pytest.raises(QpuBudgetError, match="QHYBRID_QPU_BUDGET_SECONDS") as info:
        device.sample(vqe.measured, point, shots=200, seed=2)
    assert info.value.recovery == "none: fails fast"
    assert store.count_local_jobs() == 1  # the refused one never reached the device
    assert store.ledger_counts() == {"done": 1}

    # What is already paid for re-attaches; a simulator on the same budget is never refused.
    assert device.sample(vqe.measured, point, shots=200, seed=1) == first
    simulator = open_executor("aer", settings, transpiler_seed=1, store=store)
    simulator.sample(vqe.measured, point, shots=200, seed=2)
    assert store.qpu_spent(0.0) == pytest.approx(charge)


@pytest.mark.parametrize(("fault", "charged"), [("rejection", False), ("execution", True)])
def test_a_refused_submission_is_not_charged_and_one_that_ran_is(
        tmp_path: Path, vqe, fault: str, charged: bool) -> None:
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    settings = Settings(qpu_budget_seconds=1000.0, faults=f"{fault}=1,seed=3")
    device = open_executor("ibm:fake_manila", settings, transpiler_seed=1, store=store)
    with pytest.raises(QhybridError):
        device.sample(vqe.measured, np.array([[0.1, 0.2, 0.3, 0.4]]), shots=200, seed=1)
    spent = store.qpu_spent(0.0)
    assert (spent > 0) is charged, spent
