"""The execution plane inside the promotion flow: fallback, mitigation arms, sessions, leases."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from backends import StateStore, Submission, SubmissionResult
from qhybrid.core import ExperimentSpec, RunManifest, RunOptions, load_spec, spec_from_mapping


def _parent_runs(settings, flow_run_id: str) -> list:
    """The MLflow parent runs of one Prefect flow run."""
    from registry import Tracker

    tracker = Tracker.for_settings(settings)
    return tracker.client.search_runs(
        [e.experiment_id for e in tracker.client.search_experiments()],
        filter_string=f"tags.`qhybrid.prefect_flow_run_id` = '{flow_run_id}'")


def _small(repo: Path, **hardware: object) -> ExperimentSpec:
    data = load_spec(repo / "specs" / "qaoa-maxcut-small.yaml").model_dump(mode="json")
    data["gates"]["hardware"] |= hardware
    return spec_from_mapping(data)


def test_a_sick_target_falls_back_and_the_downgrade_cannot_pass(
        prefect_server, configure, repo) -> None:
    from flows import promote_experiment

    spec = _small(repo, backend="ibm:fake_lagos", fallback=["aer-noisy:fake_lagos"],
                  mitigation={"readout": True})
    # Only the IBM target is down for maintenance; the simulators stay healthy.
    configure(faults="maintenance=1,seed=1,target=ibm:", retry_backoff_seconds=0)
    report = promote_experiment(spec)

    hardware = next(g for g in report.gates if g.gate == "hardware")
    assert not hardware.passed and hardware.downgraded_from == "ibm:fake_lagos"
    assert hardware.backend == "aer-noisy:fake_lagos"
    assert any(c.name == "ran_on_target" and not c.passed for c in hardware.criteria)
    assert report.decision is not None and not report.decision.promote

    execution = report.execution
    assert execution is not None and len(execution.fallbacks) == 1
    fallback = execution.fallbacks[0]
    assert fallback.requested == "ibm:fake_lagos" and fallback.used == "aer-noisy:fake_lagos"
    assert fallback.reason["error"] in ("BackendRejectedError", "BreakerOpenError")
    assert fallback.reason["recovery"] == "fallback to aer-noisy:fake_lagos"
    assert fallback.dropped == ("mitigation (readout)", "mode=session")
    assert execution.breaker_trips == 1  # the maintenance signal opened the breaker at once
    assert set(execution.retries_by_class) <= {"BackendRejectedError"}
    assert execution.mitigation is None

    manifest = RunManifest.model_validate_json(Path(report.manifest).read_text())
    assert manifest.execution == execution


def test_mitigated_and_unmitigated_arms_in_a_session(prefect_server, settings, repo) -> None:
    from flows import promote_experiment

    spec = _small(repo, backend="ibm:fake_lagos", mode="session",
                  mitigation={"readout": True, "require_improvement": True, "repeats": 3})
    report = promote_experiment(spec)

    hardware = next(g for g in report.gates if g.gate == "hardware")
    mitigation = report.execution.mitigation
    assert mitigation is not None and mitigation.techniques == ("readout",)
    assert mitigation.applied_options["resilience"]["measure_mitigation"] is True
    assert len(mitigation.unmitigated_values) == len(mitigation.mitigated_values) == 3
    # Readout mitigation moves the expected cut towards the exact value on fake_lagos.
    assert mitigation.improvement_low > 0, mitigation
    assert abs(mitigation.mitigated_value - mitigation.ideal_value) < abs(
        mitigation.unmitigated_value - mitigation.ideal_value)
    assert mitigation.mitigated_qpu_seconds > mitigation.unmitigated_qpu_seconds > 0
    assert mitigation.unmitigated_shots is not None and mitigation.mitigated_shots is not None
    assert mitigation.mitigated_shots >= mitigation.unmitigated_shots > 0
    criterion = next(c for c in hardware.criteria if c.name == "mitigation_improvement_low")
    assert criterion.passed and hardware.metrics["mitigation_improvement"] == mitigation.improvement

    # The session was leased for the flow run and closed with it.
    leases = StateStore(settings.state_store_url).leases(report.prefect_flow_run_id)
    assert [(lease.kind, lease.status) for lease in leases] == [("session", "closed")]
    assert report.execution.leases_opened == report.execution.leases_closed == 1

    # The raw arms are kept on the hardware gate's MLflow run.
    from registry import Tracker

    tracker = Tracker.for_settings(settings)
    path = tracker.client.download_artifacts(hardware.mlflow_run_id, "mitigation.json")
    stored = json.loads(Path(path).read_text())
    assert stored["mitigated_values"] == list(mitigation.mitigated_values)


@pytest.mark.parametrize("rerun", [True])
def test_a_rerun_reattaches_instead_of_paying_again(prefect_server, settings, repo,
                                                    rerun: bool) -> None:
    from flows import run_experiment

    spec = load_spec(repo / "specs" / "vqe-h2.yaml")
    first = run_experiment(spec, RunOptions(backend="ibm:fake_manila"))
    second = run_experiment(spec, RunOptions(backend="ibm:fake_manila"))
    assert first.execution.provider_submissions > 0 and first.execution.reattachments == 0
    assert second.execution.provider_submissions == 0
    assert second.execution.reattachments == first.execution.distinct_jobs
    assert second.metrics == first.metrics


class SessionHold:
    """A fault injected on purpose: the first job submitted inside an IBM Session or Batch is
    held until the test lets it go, so the flow is certainly inside its session, with a lease
    open, when the test acts (no race against a gate's duration)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from backends import IbmBackend

        self.reached, self.release = threading.Event(), threading.Event()
        original = IbmBackend.run

        def held(backend: IbmBackend, submission: Submission) -> SubmissionResult:
            if backend._mode is not None and not self.reached.is_set():
                self.reached.set()
                # Short waits, so that an exception Prefect injects (a timeout) is delivered.
                while not self.release.wait(0.05):
                    pass
            return original(backend, submission)

        monkeypatch.setattr(IbmBackend, "run", held)


def test_a_cancelled_flow_leaves_no_open_lease(prefect_server, settings, configure, repo,
                                               monkeypatch) -> None:
    from uuid import UUID

    from prefect import get_client
    from prefect.exceptions import CancelledRun
    from prefect.states import Cancelling

    from flows import promote_experiment

    configure(cancel_poll_seconds=0)  # the next submission after the hold sees the cancel
    spec = _small(repo, backend="ibm:fake_lagos", mode="session",
                  mitigation={"readout": True, "repeats": 3})
    hold = SessionHold(monkeypatch)
    store = StateStore(settings.state_store_url)
    outcome: dict[str, object] = {}

    def promote() -> None:
        try:
            outcome["report"] = promote_experiment(spec)
        except BaseException as exc:  # noqa: BLE001 - the test inspects whatever ended the flow
            outcome["error"] = exc

    worker = threading.Thread(target=promote)
    worker.start()
    assert hold.reached.wait(300), "the hardware gate never submitted inside its session"
    [opened] = store.leases(status="open")
    flow_run_id = opened.flow_run_id
    assert flow_run_id is not None and opened.kind == "session"
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(flow_run_id), Cancelling(), force=True)
        hold.release.set()
        worker.join(300)
        final = client.read_flow_run(UUID(flow_run_id)).state

    assert isinstance(outcome.get("error"), CancelledRun), outcome
    assert final is not None and final.is_cancelled()
    leases = store.leases(flow_run_id)
    assert leases and [lease.status for lease in leases] == ["cancelled"] * len(leases)
    assert store.leases(status="open") == []
    runs = _parent_runs(settings, flow_run_id)
    assert [r.info.status for r in runs] == ["KILLED"]
    assert runs[0].data.tags["qhybrid.failure"] == "flow cancelled"
    from registry import Tracker

    kept = Tracker.for_settings(settings).client.download_artifacts(runs[0].info.run_id,
                                                                    "execution.json")
    record = json.loads(Path(kept).read_text())  # what the run did before it was cancelled
    assert record["leases_opened"] == record["leases_closed"] == 1
    assert record["provider_submissions"] > 0


def test_a_flow_that_times_out_leaves_no_open_lease(prefect_server, settings, repo,
                                                    monkeypatch) -> None:
    from flows import promote_experiment

    spec = _small(repo, backend="ibm:fake_lagos", mode="session",
                  mitigation={"readout": True, "repeats": 3})
    hold = SessionHold(monkeypatch)  # never released: the timeout strikes inside the session
    store = StateStore(settings.state_store_url)
    with pytest.raises(TimeoutError):
        promote_experiment.with_options(timeout_seconds=20)(spec)
    assert hold.reached.is_set()
    leases = store.leases()
    assert leases and [lease.status for lease in leases] == ["cancelled"] * len(leases)
    runs = _parent_runs(settings, leases[0].flow_run_id)
    assert [r.info.status for r in runs] == ["FAILED"]
    assert runs[0].data.tags["qhybrid.failure"] == "flow timed out"
