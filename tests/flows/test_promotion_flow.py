"""The promotion flow end to end on real components: Prefect server, MLflow on SQLite, Aer,
qiskit-ibm-runtime local mode."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from prefect import flow, task

from flows import promote_experiment, run_experiment
from qhybrid.core import RunOptions, SubmissionError, TransportError, load_spec
from registry import Tracker, read_decisions, read_manifest
from tasks import retry_if_transient


def test_vqe_promotion_records_everything(prefect_server, settings, repo: Path) -> None:
    spec = load_spec(repo / "specs" / "vqe-h2.yaml")
    report = promote_experiment(spec)
    assert [g.gate for g in report.gates] == ["ideal", "statistical", "hardware", "baseline"]
    assert all(g.passed for g in report.gates), [g.reasons for g in report.gates]
    assert report.decision.promote and report.decision.aliases == ("challenger", "champion")

    tracker = Tracker.for_settings(settings)
    parent = tracker.get_run(report.mlflow_run_id)
    assert parent.status == "FINISHED"
    assert parent.params["family.kind"] == "vqe" and parent.params["shots"] == "4000"
    assert parent.tags[f"dvc.md5.{spec.dataset.path}"] == json.loads(
        (Path(report.manifest)).read_text())["data"][spec.dataset.path]["md5"]
    assert parent.tags["qhybrid.prefect_flow_run_id"] == report.prefect_flow_run_id
    assert parent.tags["qhybrid.registered_version"] == report.registered_version
    children = tracker.child_runs(report.mlflow_run_id)
    assert [c.tags["qhybrid.gate"] for c in children] == [
        "ideal", "statistical", "hardware", "baseline"]
    assert {c.status for c in children} == {"FINISHED"}  # every gate run ends
    ideal = children[0]
    history = tracker.client.get_metric_history(ideal.run_id, "objective")
    assert len(history) >= 2

    assert parent.artifact_uri is not None
    artifacts = Path(parent.artifact_uri.removeprefix("file://")) / "experiment"
    for name in ("manifest.json", "spec.json", "circuits/final.qasm", "circuits/final.qpy",
                 "circuits/ansatz.qasm", "plots/histogram.png", "plots/convergence.png"):
        assert (artifacts / name).is_file(), name

    manifest = read_manifest(Path(report.manifest))
    assert manifest.mlflow_run_id == report.mlflow_run_id
    assert manifest.prefect_flow_run_id == report.prefect_flow_run_id
    assert manifest.spec_sha256 == spec.sha256()
    assert manifest.backends["hardware"]["calibration"]["qubits"]
    assert tracker.version_by_alias(spec.name, "champion").version == report.registered_version

    # The same spec again, same data, same results: no duplicate version, and no alias moves;
    # the decision names the version that already holds this evidence.
    again = promote_experiment(spec)
    assert again.decision.aliases == () and again.registered_version == report.registered_version
    assert tracker.version_by_alias(spec.name, "champion").version == report.registered_version
    assert tracker.version_by_alias(spec.name, "challenger").version == report.registered_version
    log = read_decisions(settings.promotion_log_path, spec.name)
    assert [r.registered_version for r in log] == [report.registered_version,
                                                   again.registered_version]


def test_run_flow_on_a_noisy_backend(prefect_server, settings, repo: Path) -> None:
    spec = load_spec(repo / "specs" / "vqe-h2.yaml")
    report = run_experiment(spec, RunOptions(backend="aer-noisy:fake_manila"))
    assert report.kind == "run" and report.backend == "aer-noisy:fake_manila"
    assert report.gates == () and report.decision is None
    assert report.metrics["energy_error"] < 0.2


def test_a_service_run_takes_its_class_retry_policy(prefect_server, configure,
                                                    repo: Path) -> None:
    settings = configure(sla_policies=json.dumps(
        {"near-real-time": {"submission_retries": 5, "retry_backoff_seconds": 0.25}}))
    spec = load_spec(repo / "specs" / "vqe-h2.yaml")
    report = run_experiment(spec, RunOptions(backend="aer", sla="near-real-time"))
    tags = Tracker.for_settings(settings).get_run(report.mlflow_run_id).tags
    assert tags["qhybrid.retry_policy"] == (
        "submission_retries=5, retry_backoff_seconds=0.25 (SLA class near-real-time)")


def test_retries_only_for_transient_errors(prefect_server) -> None:
    calls: Counter[str] = Counter()  # this test's own count, not a process-global one

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_if_transient)
    def flaky(kind: str) -> str:
        calls[kind] += 1
        if calls[kind] < 3:
            raise TransportError("reset") if kind == "transport" else SubmissionError("bad request")
        return "done"

    @flow
    def retry_probe(kind: str) -> str:
        return flaky(kind)

    assert retry_probe("transport") == "done" and calls["transport"] == 3
    with pytest.raises(SubmissionError):
        retry_probe("submission")
    assert calls["submission"] == 1


def test_unpinned_data_is_recorded_on_the_run(prefect_server, configure, project_copy: Path,
                                              repo: Path) -> None:
    data = project_copy / "data" / "h2_sto3g_0735.json"
    data.write_text(data.read_text().replace("0.18093119978423156", "0.18"))
    local = configure(project_root=project_copy)
    spec = load_spec(repo / "specs" / "vqe-h2.yaml")
    report = run_experiment(spec, RunOptions(backend="aer", allow_unpinned_data=True))
    assert report.data_overrides and "dvc.lock pins" in report.data_overrides[0]
    tracker = Tracker.for_settings(local)
    assert "dvc.lock" in tracker.get_run(report.mlflow_run_id).tags["qhybrid.data_overrides"]


def test_failed_gate_leaves_run_failed_and_registry_untouched(
    prefect_server, settings, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backends import IbmBackend
    from qhybrid.core import ExecutionError

    def broken(*_args: object, **_kwargs: object) -> None:
        raise ExecutionError("injected: device lost the job", provider_status="ERROR")

    monkeypatch.setattr(IbmBackend, "run", broken)
    spec = load_spec(repo / "specs" / "vqe-h2.yaml")
    with pytest.raises(ExecutionError, match="injected"):
        promote_experiment(spec)
    tracker = Tracker.for_settings(settings)
    runs = tracker.client.search_runs([tracker.experiment_id],
                                      filter_string="tags.`qhybrid.kind` = 'promotion'")
    assert [r.info.status for r in runs] == ["FAILED"]
    assert tracker.registered() == []
    assert not settings.promotion_log_path.exists()
