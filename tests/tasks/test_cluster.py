"""The window a Dask sweep keeps its chunks in (``tasks.cluster.in_order``), on a real thread
pool: results in submission order, never more than the window submitted and not yet handed
on, and a failure raised with its class while the work not yet started is cancelled."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from qhybrid.core import ExecutionError
from tasks.cluster import in_order


def _result(future: Future[int]) -> int:
    return future.result()


def _cancel(future: Future[int]) -> bool:
    return future.cancel()


def test_results_come_in_order_with_at_most_the_window_in_flight() -> None:
    first_may_finish = threading.Event()
    pulled: list[int] = []
    handed_on: list[int] = []
    in_flight: list[int] = []

    def items() -> Iterator[int]:
        for i in range(12):
            in_flight.append(len(pulled) - len(handed_on))  # before this one is taken
            pulled.append(i)
            yield i

    def work(i: int) -> int:
        if i == 0:  # the first finishes only after the second did: order is not completion
            assert first_may_finish.wait(timeout=60)
        if i == 1:
            first_may_finish.set()
        return i * i

    with ThreadPoolExecutor(max_workers=4) as pool:
        for value in in_order(lambda i: pool.submit(work, i), items(), 3, result=_result,
                              cancel=_cancel):
            handed_on.append(value)

    assert handed_on == [i * i for i in range(12)]
    assert max(in_flight) == 2  # a third is taken only when fewer than 3 are out


def test_a_failure_is_raised_with_its_class_and_the_work_not_started_is_cancelled() -> None:
    release = threading.Event()
    submitted: list[Future[int]] = []

    def work(i: int) -> int:
        if i == 1:
            raise ExecutionError("chunk 1 failed on the provider")
        if i == 2:  # holds the pool's only thread: what comes after it has not started
            assert release.wait(timeout=60)
        return i

    def submit(i: int) -> Future[int]:
        submitted.append(pool.submit(work, i))
        return submitted[-1]

    pool = ThreadPoolExecutor(max_workers=1)
    try:
        got: list[int] = []
        with pytest.raises(ExecutionError, match="chunk 1 failed"):
            for value in in_order(submit, iter(range(10)), 3, result=_result, cancel=_cancel):
                got.append(value)
        assert got == [0]
        # 0 and 1 were handed on (1 as its error); 2 runs, 3 was waiting: it is cancelled,
        # and nothing after 3 was ever taken.
        assert len(submitted) == 4
        assert submitted[3].cancelled()
    finally:
        release.set()
        pool.shutdown(wait=True)


def test_a_command_overrides_settings_for_the_flows_it_runs_without_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from qhybrid.core import InvalidInputError
    from tasks import read_settings, settings_overrides

    monkeypatch.setenv("QHYBRID_DASK_WORKERS", "3")
    with settings_overrides({"QHYBRID_SWEEP_RUNNER": "dask"}):
        inside = read_settings()
        with settings_overrides({"QHYBRID_DASK_WORKERS": "5"}):
            nested = read_settings()
        with settings_overrides({"QHYBRID_DASK_WORKERS": "0"}), \
                pytest.raises(InvalidInputError) as bad:
            read_settings()
    after = read_settings()

    assert (inside.sweep_runner, inside.dask_workers) == ("dask", 3)
    assert (nested.sweep_runner, nested.dask_workers) == ("dask", 5)
    assert bad.value.field == "QHYBRID_DASK_WORKERS"
    assert (after.sweep_runner, after.dask_workers) == ("serial", 3)
    assert "QHYBRID_SWEEP_RUNNER" not in os.environ
