"""MLflow records people can read, on a real MLflow SQLite store: every run ends (a promotion,
a failing flow, a gate cut short), the parent run sets each gate's verdict and metrics and the
decision side by side for the compare view, inputs are MLflow datasets with their DVC md5, and
the plots a reviewer wants are there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow.entities import Run
from PIL import Image

import qhybrid_usecases as usecases
from qhybrid.core import (
    ExecutionError,
    ExperimentSpec,
    PromotionDecision,
    RunCancelledError,
    RunOptions,
    Settings,
    load_spec,
)
from qhybrid_usecases import RunHandle, Services, StepOutcome
from qhybrid_usecases._run import gate_run
from registry import Tracker


def _all_runs(tracker: Tracker) -> list[Run]:
    return tracker.client.search_runs([tracker.experiment_id], max_results=1000)


def _assert_every_run_ended(tracker: Tracker) -> list[Run]:
    runs = _all_runs(tracker)
    assert runs
    open_runs = [(r.info.run_name, r.info.status, r.info.end_time) for r in runs
                 if r.info.status == "RUNNING" or r.info.end_time is None]
    assert open_runs == []
    return runs


def _locked_md5(repo: Path, path: str) -> str:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return next(out["md5"] for stage in lock["stages"].values()
                for out in stage.get("outs", []) if out["path"] == path)


def _png(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def _gates(spec: ExperimentSpec, services: Services) -> tuple[RunHandle, list[StepOutcome]]:
    run = usecases.open_run(spec, RunOptions(), services, kind="promotion", flow_run_id=None)
    ideal = usecases.ideal_gate(run, services)
    statistical = usecases.statistical_gate(run, services)
    hardware = usecases.hardware_gate(run, services, ideal.trial)
    baseline = usecases.baseline_gate(run, services, hardware.trial)
    return run, [ideal, statistical, hardware, baseline]


def _decided(spec: ExperimentSpec, services: Services
             ) -> tuple[RunHandle, list[StepOutcome], PromotionDecision]:
    """Every gate of ``spec`` passed and a decision to promote, nothing recorded yet."""
    run, steps = _gates(spec, services)
    assert steps[0].trial is not None and steps[2].trial is not None
    gates = [s.gate for s in steps if s.gate is not None]
    decision = usecases.decide_promotion(run, services, gates, steps[2].trial)
    assert decision.promote, decision.reasons
    return run, steps, decision


@pytest.fixture
def qaoa(repo: Path) -> ExperimentSpec:
    return load_spec(repo / "specs" / "qaoa-maxcut-small.yaml")


def test_a_promotion_ends_every_run_and_sets_its_evidence_side_by_side(
        settings: Settings, qaoa: ExperimentSpec, repo: Path) -> None:
    services = Services.open(settings)
    run, steps, decision = _decided(qaoa, services)
    ideal, hardware = steps[0], steps[2]
    assert ideal.trial is not None and hardware.trial is not None
    recorded = usecases.record_evidence(run, services, ideal.trial, steps, decision)
    version = usecases.apply_promotion(run, services, decision)
    report = usecases.finish_run(run, services, recorded, ideal.trial, steps, decision, version)
    assert version is not None

    tracker = services.tracker
    runs = _assert_every_run_ended(tracker)
    assert {r.info.status for r in runs} == {"FINISHED"} and len(runs) == 5

    # The compare view: each gate's verdict and metrics, the score, the decision, the version.
    parent = tracker.get_run(run.mlflow_run_id)
    objective = run.workload(services).objective
    for gate in (s.gate for s in steps if s.gate is not None):
        assert parent.metrics[f"gate.{gate.gate}.passed"] == 1.0
        assert parent.params[f"gate.{gate.gate}.verdict"] == "pass"
        assert parent.params[f"gate.{gate.gate}.backend"] == gate.backend
        for key, value in gate.metrics.items():
            assert parent.metrics[f"gate.{gate.gate}.{key}"] == pytest.approx(value), key
    assert parent.params["gate.hardware.backend"] == "ibm:fake_lagos"
    assert "gate.hardware.mitigation_improvement" in parent.metrics
    assert parent.metrics["promotion.score"] == pytest.approx(hardware.trial.metrics[objective])
    assert parent.params["promotion.score_metric"] == f"hardware {objective}"
    assert parent.metrics["promotion.promoted"] == 1.0
    assert parent.params["promotion.decision"] == "promote"
    assert parent.tags["qhybrid.decision"] == "promote"
    assert parent.metrics["promotion.registered_version"] == float(version)
    assert parent.params["promotion.registered_version"] == version

    # Every sampled value carries its shots and standard error, in the report and in MLflow;
    # the ideal values are exact, with the counts' value beside them.
    assert report.metrics["exact"] == 1.0 and report.metrics["shots"] == qaoa.shots
    assert report.metrics[f"{objective}.stderr"] > 0 and f"{objective}.sampled" in report.metrics
    assert parent.metrics[f"final.{objective}.stderr"] == report.metrics[f"{objective}.stderr"]
    manifest = json.loads(Path(recorded.manifest).read_text())
    assert manifest["metrics"]["shots"] == qaoa.shots
    assert manifest["metrics"][f"{objective}.stderr"] == report.metrics[f"{objective}.stderr"]
    assert parent.metrics["gate.hardware.exact"] == 0.0
    assert parent.metrics["gate.hardware.shots"] == qaoa.shots
    assert parent.metrics[f"gate.hardware.{objective}.stderr"] > 0
    assert parent.metrics["gate.hardware.degradation.stderr"] > 0
    assert steps[2].gate is not None
    assert steps[2].gate.criteria[0].name == "degradation (limit + 2 stderr)"

    # Inputs: one MLflow dataset per DVC path, its digest the md5 dvc.lock pins.
    expected = {qaoa.dataset.path: _locked_md5(repo, qaoa.dataset.path)}
    assert tracker.datasets(run.mlflow_run_id) == expected
    for child in tracker.child_runs(run.mlflow_run_id):
        assert tracker.datasets(child.run_id) == expected, child.name

    # The plots and circuit diagrams, as PNG files next to the QPY and OpenQASM 3 files.
    root = Path((parent.artifact_uri or "").removeprefix("file://")) / "experiment"
    for name in ("circuits/ansatz.png", "circuits/final.png", "plots/convergence.png",
                 "plots/histogram.png", "plots/ideal_vs_hardware.png"):
        width, height = _png(root / name)
        assert width > 100 and height > 100, name
    assert (root / "circuits" / "final.qpy").is_file()
    assert (root / "circuits" / "final.qasm").is_file()
    by_gate = {c.tags["qhybrid.gate"]: c for c in tracker.child_runs(run.mlflow_run_id)}
    wanted = {"ideal": ["convergence.png", "histogram.png"], "statistical": ["repeats.png"],
              "hardware": ["ideal_vs_hardware.png", "mitigation.png"], "baseline": []}
    for gate_name, names in wanted.items():
        folder = Path((by_gate[gate_name].artifact_uri or "").removeprefix("file://")) / "plots"
        assert sorted(p.name for p in folder.glob("*.png")) == sorted(names), gate_name
        for name in names:
            _png(folder / name)
    # The record logs the gates' own figures of its trial, not second drawings of them.
    for gate_name, name in (("ideal", "convergence.png"), ("ideal", "histogram.png"),
                            ("hardware", "ideal_vs_hardware.png")):
        folder = Path((by_gate[gate_name].artifact_uri or "").removeprefix("file://")) / "plots"
        assert (root / "plots" / name).read_bytes() == (folder / name).read_bytes(), name


@pytest.mark.parametrize(("stop", "status"), [
    (KeyboardInterrupt(), "KILLED"),
    (RunCancelledError("flow run cancelled"), "KILLED"),
    (ExecutionError("the device lost the job"), "FAILED"),
])
def test_a_gate_cut_short_ends_its_run_and_the_parent(settings: Settings, qaoa: ExperimentSpec,
                                                      stop: BaseException, status: str) -> None:
    services = Services.open(settings)
    run = usecases.open_run(qaoa, RunOptions(), services, kind="promotion", flow_run_id=None)
    ideal = usecases.ideal_gate(run, services)
    assert ideal.gate is not None
    tracker = services.tracker
    with pytest.raises(type(stop)), gate_run(run, services, ideal.gate):
        raise stop
    # The gate's run ends as the stop leaves its block, before the flow fails the parent.
    gates = tracker.child_runs(run.mlflow_run_id)
    assert [(g.status, g.end_time is not None) for g in gates] == [(status_, True) for status_ in
                                                                    ("FINISHED", status)]
    assert tracker.get_run(run.mlflow_run_id).status == "RUNNING"
    usecases.fail_run(run, services, stop)

    _assert_every_run_ended(tracker)
    assert tracker.get_run(run.mlflow_run_id).status == status


def test_a_gate_run_a_stop_left_open_is_ended_with_its_parent(settings: Settings,
                                                               qaoa: ExperimentSpec) -> None:
    services = Services.open(settings)
    run = usecases.open_run(qaoa, RunOptions(), services, kind="promotion", flow_run_id=None)
    # What a signal between opening a gate's run and entering its block leaves behind.
    stray = services.tracker.start_run("gate:statistical", tags={"qhybrid.gate": "statistical"},
                                       parent_run_id=run.mlflow_run_id)
    usecases.fail_run(run, services, KeyboardInterrupt())

    _assert_every_run_ended(services.tracker)
    assert services.tracker.get_run(stray).status == "KILLED"
    assert services.tracker.get_run(run.mlflow_run_id).status == "KILLED"


def test_a_failing_promotion_flow_ends_every_run(prefect_server, configure,
                                                 qaoa: ExperimentSpec) -> None:
    from flows import promote_experiment

    # Every job on the device and on its fallback fails on the provider: the hardware gate
    # raises after the ideal and statistical gates have recorded their runs.
    settings = configure(faults="execution=1,seed=1,target=ibm:")
    spec = qaoa.model_copy(update={"gates": qaoa.gates.model_copy(update={
        "hardware": qaoa.gates.hardware.model_copy(update={"fallback": ()})})})
    with pytest.raises(ExecutionError):
        promote_experiment(spec)
    tracker = Tracker.for_settings(settings)
    runs = _assert_every_run_ended(tracker)
    statuses = sorted((r.info.run_name, r.info.status) for r in runs)
    assert statuses == [("gate:ideal", "FINISHED"), ("gate:statistical", "FINISHED"),
                        ("promotion:qaoa-maxcut-small@0.1.0", "FAILED")]


def test_a_plot_that_fails_stops_the_promotion_before_it_is_applied(
        settings: Settings, qaoa: ExperimentSpec, monkeypatch) -> None:
    # Plots are drawn in the run's plot thread; the run waits for them before applying a
    # decision, so a plot that cannot be written fails the promotion as it did in the step.
    def full_disk(*args: object, **kwargs: object) -> Path:
        raise OSError("no space left on device")

    # The circuit diagrams are the record's own figures (the gates draw none of them).
    monkeypatch.setattr("registry.circuit_png", full_disk)
    services = Services.open(settings)
    run, steps, decision = _decided(qaoa, services)
    ideal, hardware = steps[0], steps[2]
    assert ideal.trial is not None and hardware.trial is not None
    usecases.record_evidence(run, services, ideal.trial, steps, decision)
    with pytest.raises(OSError, match="no space left"):
        usecases.apply_promotion(run, services, decision)
    tracker = services.tracker
    assert "qhybrid.registered_version" not in tracker.get_run(run.mlflow_run_id).tags
    assert not settings.promotion_log_path.exists()

    usecases.fail_run(run, services, OSError("no space left on device"))
    _assert_every_run_ended(tracker)
    assert tracker.get_run(run.mlflow_run_id).status == "FAILED"
    # The gates' plots, handed over before, are logged all the same.
    by_gate = {c.tags["qhybrid.gate"]: c for c in tracker.child_runs(run.mlflow_run_id)}
    ideal_plots = Path((by_gate["ideal"].artifact_uri or "").removeprefix("file://")) / "plots"
    _png(ideal_plots / "convergence.png")
    _png(ideal_plots / "histogram.png")
