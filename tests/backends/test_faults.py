"""Faults on purpose: classified, struck where the real failure would, reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from backends import (
    ExecutionLog,
    FaultyBackend,
    Pub,
    StateStore,
    Submission,
    Submitter,
    open_backend,
    open_executor,
)
from qhybrid.core import (
    BackendRejectedError,
    ExecutionError,
    InvalidInputError,
    Settings,
    TransportError,
    VqeFamily,
    is_transient,
    parse_faults,
)
from qhybrid.experiments import build_workload, h2_hamiltonian

POINT = np.array([[0.1, 0.2, 0.3, 0.4]])


@pytest.fixture(scope="module")
def workload():
    return build_workload(VqeFamily(), h2_hamiltonian())


@pytest.mark.parametrize("text", ["transport=2", "transport=0.6,execution=0.6", "bogus=0.1",
                                  "transport", "seed=-1", "transport=abc"])
def test_bad_plans_name_the_setting(text: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_faults(text)
    assert info.value.field == "QHYBRID_FAULTS"


def test_no_plan_means_no_wrapper() -> None:
    assert not isinstance(open_backend("aer", Settings(), transpiler_seed=1), FaultyBackend)


@pytest.mark.parametrize(("key", "cls", "job_made"), [
    ("transport", TransportError, False), ("rejection", BackendRejectedError, False),
    ("maintenance", BackendRejectedError, False), ("timeout", TransportError, True),
    ("execution", ExecutionError, True)])
def test_each_fault_strikes_where_the_real_one_would(workload, key: str, cls: type,
                                                      job_made: bool) -> None:
    store = StateStore("sqlite://")
    backend = open_backend("aer", Settings(faults=f"{key}=1,seed=3"), transpiler_seed=1,
                           store=store)
    submitter = Submitter(backend, store, ExecutionLog())
    submission = Submission("sample", (Pub(workload.measured, POINT),), seed=1, shots=10)
    with pytest.raises(cls) as info:
        submitter.attempt(submission, submitter.key(submission))
    assert info.value.provider_status == f"INJECTED_{key.upper()}"
    assert is_transient(info.value) is (key != "execution")
    assert store.count_local_jobs() == (1 if job_made else 0)
    assert info.value.recovery is not None


def test_rates_and_results_under_faults(workload) -> None:
    clean = open_executor("aer", Settings(), transpiler_seed=1)
    expected = clean.estimate(workload.ansatz, workload.observable, POINT, seed=1)
    faulty = open_executor("aer", Settings(faults="transport=0.2,rejection=0.1,seed=11",
                                           breaker_threshold=1000),
                           transpiler_seed=1)
    wrapper = faulty.submitter.backend
    assert isinstance(wrapper, FaultyBackend)
    failures, values = 0, []
    for seed in range(400):
        try:
            values.append(faulty.estimate(workload.ansatz, workload.observable, POINT, seed=seed))
        except (TransportError, BackendRejectedError):
            failures += 1
    assert sum(wrapper.injected.values()) == failures
    assert set(wrapper.injected) == {"transport", "rejection"}
    assert 0.22 < failures / 400 < 0.38
    # The ideal estimator is exact: every answer that got through is the clean one.
    assert len(values) == 400 - failures and all(np.allclose(v, expected) for v in values)
    assert faulty.describe()["faults"]["transport"] == 0.2


def test_a_non_transient_fault_fails_the_flow_without_retry(
        prefect_server, configure, repo) -> None:
    import json
    from pathlib import Path

    from flows import promote_experiment
    from qhybrid.core import load_spec
    from registry import Tracker

    settings = configure(faults="execution=1,seed=5", retry_backoff_seconds=0)
    with pytest.raises(ExecutionError, match="injected"):
        promote_experiment(load_spec(repo / "specs" / "vqe-h2.yaml"))
    tracker = Tracker.for_settings(settings)
    [run] = tracker.client.search_runs([tracker.experiment_id])
    assert run.info.status == "FAILED"
    kept = tracker.client.download_artifacts(run.info.run_id, "execution.json")
    record = json.loads(Path(kept).read_text())
    assert record["failures_by_class"] == {"ExecutionError": 1}
    assert record["retries_by_class"] == {}  # an execution failure is final: never retried
