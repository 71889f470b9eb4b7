"""The application layer without Prefect: the same use cases the CLI and the tasks call, on
real stores (MLflow on SQLite, the SQLite state store) and real simulators."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from prefect.exceptions import TerminationSignal

import qhybrid_usecases as usecases
from backends import StateStore
from qhybrid.core import (
    DataError,
    ExecutionError,
    ExperimentSpec,
    RunCancelledError,
    RunOptions,
    Settings,
    load_spec,
    spec_from_mapping,
)
from qhybrid_usecases import RunHandle, Services
from registry import read_decisions


@pytest.fixture
def vqe(repo: Path) -> ExperimentSpec:
    return load_spec(repo / "specs" / "vqe-h2.yaml")


def _promote_until_decision(spec: ExperimentSpec, services: Services,
                            ) -> tuple[RunHandle, list[usecases.StepOutcome]]:
    run = usecases.open_run(spec, RunOptions(), services, kind="promotion", flow_run_id=None)
    ideal = usecases.ideal_gate(run, services)
    statistical = usecases.statistical_gate(run, services)
    assert ideal.trial is not None
    hardware = usecases.hardware_gate(run, services, ideal.trial)
    assert hardware.trial is not None
    baseline = usecases.baseline_gate(run, services, hardware.trial)
    return run, [ideal, statistical, hardware, baseline]


def test_a_promotion_through_the_use_cases_alone(settings: Settings, vqe: ExperimentSpec) -> None:
    services = Services.open(settings)
    run, steps = _promote_until_decision(vqe, services)
    ideal, _, hardware = steps[0], steps[1], steps[2]
    assert ideal.trial is not None and hardware.trial is not None
    gates = [s.gate for s in steps if s.gate is not None]
    decision = usecases.decide_promotion(run, services, gates, hardware.trial)
    assert decision.promote and decision.aliases == ("challenger", "champion")
    recorded = usecases.record_evidence(run, services, ideal.trial, steps, decision)

    # Decided and recorded, not yet applied: the registry and the log are untouched, so an
    # approval could pause here.
    assert services.tracker.registered() == []
    assert not settings.promotion_log_path.exists()
    assert services.tracker.get_run(run.mlflow_run_id).status == "RUNNING"

    version = usecases.apply_promotion(run, services, decision)
    report = usecases.finish_run(run, services, recorded, ideal.trial, steps, decision, version)
    assert version == "1" and report.registered_version == "1"
    assert services.tracker.version_by_alias(vqe.name, "champion") is not None
    assert [r.registered_version for r in read_decisions(settings.promotion_log_path)] == ["1"]
    parent = services.tracker.get_run(run.mlflow_run_id)
    assert parent.status == "FINISHED"
    assert [g.status for g in services.tracker.child_runs(run.mlflow_run_id)] == ["FINISHED"] * 4
    manifest = json.loads(Path(report.manifest or "").read_text())
    assert set(manifest["backends"]) == {"ideal", "hardware"}
    assert manifest["execution"]["provider_submissions"] == recorded.execution.provider_submissions
    assert not Path(run.scratch).exists()


def test_the_run_handle_is_plain_data(settings: Settings, vqe: ExperimentSpec) -> None:
    run = usecases.open_run(vqe, RunOptions(backend="aer"), Services.open(settings), kind="run",
                            flow_run_id="f-1")
    again = RunHandle.model_validate_json(run.model_dump_json())
    assert again == run and again.spec == vqe  # it can cross a process or task boundary


def test_data_changed_during_a_run_is_refused(configure, project_copy: Path,
                                              vqe: ExperimentSpec) -> None:
    services = Services.open(configure(project_root=project_copy))
    run = usecases.open_run(vqe, RunOptions(), services, kind="run", flow_run_id=None)
    built = run.workload(services)
    assert run.workload(services) is built  # one build for the run's steps
    assert run.workload(Services.open(services.settings)) is not built  # per run's services
    data = project_copy / vqe.dataset.path
    data.write_text(data.read_text().replace("0.39", "0.38"))
    with pytest.raises(DataError, match="changed while the run was in progress"):
        usecases.run_on_backend(run, services)  # the built workload is not taken


def test_fail_run_releases_leases_and_tags_what_it_could_not(settings: Settings,
                                                            vqe: ExperimentSpec) -> None:
    services = Services.open(settings)
    run = usecases.open_run(vqe, RunOptions(), services, kind="run", flow_run_id="flow-1")
    store = StateStore(settings.state_store_url)
    store.open_lease("flow-1", "aer", "job", "local-abc")
    # A real device without a token cannot be opened, so its lease cannot be released.
    store.open_lease("flow-1", "ibm:ibm_torino", "job", "remote-xyz")
    released = usecases.fail_run(run, services, RunCancelledError("stop"))

    assert [(r.provider_id, r.released) for r in released] == [("local-abc", True),
                                                             ("remote-xyz", False)]
    assert [lease.provider_id for lease in store.leases(status="open")] == ["remote-xyz"]
    parent = services.tracker.get_run(run.mlflow_run_id)
    assert parent.status == "KILLED" and parent.tags["qhybrid.failure"] == "flow cancelled"
    assert "remote-xyz" in parent.tags["qhybrid.lease_release_failed"]
    assert not Path(run.scratch).exists()


def _raised_while_handling(first: BaseException, second: Exception) -> Exception:
    """``second`` as Prefect raises it when ``first`` lands while it creates a task run:
    Python records ``first`` as its context."""
    second.__context__ = first
    return second


@pytest.mark.parametrize(("exc", "status", "reason"), [
    (ExecutionError("x"), "FAILED", "flow failed: ExecutionError"),
    (TimeoutError(), "FAILED", "flow timed out"),
    (KeyboardInterrupt(), "KILLED", "flow interrupted"),
    (RunCancelledError("x"), "KILLED", "flow cancelled"),
    (_raised_while_handling(KeyboardInterrupt(), ValueError("Task run is not set")),
     "KILLED", "flow interrupted"),
    (_raised_while_handling(ExecutionError("x"), ValueError("y")), "FAILED",
     "flow failed: ValueError"),
    (TerminationSignal(signal.SIGTERM), "KILLED", "flow terminated"),
    (_raised_while_handling(TerminationSignal(signal.SIGTERM),
                            ValueError("Task run is not set")), "KILLED", "flow terminated"),
])
def test_failure_reasons(exc: BaseException, status: str, reason: str) -> None:
    assert usecases.failure_reason(exc) == (reason, status)
    assert usecases.interrupted(exc) == (reason == "flow interrupted")
    assert usecases.terminated(exc) == (reason == "flow terminated")


def test_preflight_names_every_backend_of_a_promotion(vqe: ExperimentSpec) -> None:
    data = vqe.model_dump(mode="json")
    data["gates"]["hardware"]["fallback"] = ["aer-noisy:fake_manila"]
    spec = spec_from_mapping(data)
    assert usecases.backends_of(spec, RunOptions(), kind="promotion") == {
        "gates.ideal.backend": "aer", "gates.hardware.backend": "ibm:fake_manila",
        "gates.hardware.fallback.0": "aer-noisy:fake_manila"}
    assert usecases.backends_of(spec, RunOptions(backend="aer:statevector"), kind="run") == {
        "--backend": "aer:statevector"}
