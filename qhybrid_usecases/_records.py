"""Recording a run's evidence (manifest, circuits, plots, metrics) and finishing it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from qhybrid.core import (
    CircuitRecord,
    DataPinRecord,
    ExecutionRecord,
    ManifestSeeds,
    PromotionDecision,
    RunManifest,
    RunReport,
    TrialResult,
)
from qhybrid.experiments import Workload, bind, write_circuit
from qhybrid_usecases._run import (
    RunHandle,
    StepOutcome,
    report_progress,
    run_executor,
    scratch,
)
from qhybrid_usecases._services import Services
from registry import convergence_png, git_commit, histogram_png, package_versions, write_manifest


class RecordedRun(BaseModel):
    """Where a run's evidence went: its local manifest, and the execution record in it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    manifest: str
    execution: ExecutionRecord
    ideal_counts_sha256: str


def counts_sha256(counts: dict[str, int]) -> str:
    """SHA-256 of counts as canonical JSON."""
    text = json.dumps(counts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _write_artifacts(run: RunHandle, workload: Workload, trial: TrialResult) -> list[CircuitRecord]:
    """Circuits (OpenQASM 3 and QPY), histogram and convergence plot into the scratch folder."""
    folder = scratch(run)
    title = f"{run.spec.name} {run.spec.version}"
    circuits = [
        write_circuit(workload.ansatz, folder / "circuits", "ansatz"),
        write_circuit(bind(workload, workload.measured, trial.parameters), folder / "circuits",
                      "final"),
    ]
    histogram_png(trial.counts, folder / "plots" / "histogram.png", title=title)
    if trial.history:
        convergence_png([workload.sign * v for v in trial.history],
                        folder / "plots" / "convergence.png", title=title,
                        ylabel=workload.family.axis_label)
    return circuits


def _ideal_counts(run: RunHandle, services: Services, workload: Workload,
                  trial: TrialResult) -> dict[str, int]:
    """The simulator part of a run: ideal Aer counts at the final parameters (replayable).

    A trial that ran on ``aer`` sampled exactly these (same circuit, parameters, shots and
    seed), so its counts are taken as they are; any other backend's are sampled anew on Aer.
    """
    if trial.backend == "aer":
        return trial.counts
    spec = run.spec
    executor = run_executor(run, services, "aer")
    return executor.sample(workload.measured, workload.circuit_points(trial.parameters),
                           shots=spec.shots, seed=spec.seeds.simulator)[0]


def record_evidence(
    run: RunHandle, services: Services, trial: TrialResult, steps: Sequence[StepOutcome],
    decision: PromotionDecision | None = None,
) -> RecordedRun:
    """Write the manifest, circuits, plots, metrics and verdict tags of a run; the run stays
    open (a promotion applies its decision next).

    ``trial`` is the execution whose circuits, counts and convergence are recorded (the ideal
    gate's for a promotion). Its parameters are replayed on ideal Aer for the manifest.

    Raises:
        TrackingError: MLflow or the manifest could not be written.
    """
    report_progress(run, services, "post-processing", "recording the evidence")
    spec = run.spec
    tracker = services.tracker
    workload = run.workload(services)
    circuits = _write_artifacts(run, workload, trial)
    counts = _ideal_counts(run, services, workload, trial)
    backends: dict[str, dict[str, object]] = {}
    for step in steps:
        backends |= step.backends
    manifest = RunManifest(
        kind=run.kind, experiment=spec.name, version=spec.version,
        spec=spec.model_dump(mode="json"), spec_sha256=spec.sha256(),
        parameters=trial.parameters, parameter_names=workload.parameter_names,
        seeds=ManifestSeeds.model_validate(spec.seeds.model_dump()), shots=spec.shots,
        backends=backends,
        circuits=tuple(circuits), ideal_counts=counts, ideal_counts_sha256=counts_sha256(counts),
        data={path: DataPinRecord.model_validate(pin) for path, pin in run.pins.items()},
        packages=package_versions(),
        git_commit=git_commit(services.settings.project_root),
        prefect_flow_run_id=run.flow_run_id, mlflow_run_id=run.mlflow_run_id,
        created=dt.datetime.now(dt.UTC).isoformat(), execution=services.log.record(),
    )
    folder = scratch(run)
    write_manifest(folder / "manifest.json", manifest)
    (folder / "spec.json").write_text(spec.model_dump_json(indent=1), encoding="utf-8")
    tracker.log_artifacts(run.mlflow_run_id, folder, "experiment")
    local = write_manifest(services.settings.manifests_path / f"{run.mlflow_run_id}.json", manifest)

    record = manifest.execution
    assert record is not None
    metrics = {f"final.{k}": v for k, v in trial.metrics.items()}
    metrics |= {"final.quantum_seconds": trial.quantum_seconds,
                "final.classical_seconds": trial.classical_seconds, "shots": float(spec.shots),
                "execution.provider_submissions": float(record.provider_submissions),
                "execution.reattachments": float(record.reattachments),
                "execution.breaker_trips": float(record.breaker_trips),
                "execution.fallbacks": float(len(record.fallbacks)),
                "execution.retries": float(sum(record.retries_by_class.values())),
                "execution.qpu_seconds_estimate": record.qpu_seconds_estimate}
    tracker.log_metrics(run.mlflow_run_id, metrics)
    gates = [step.gate for step in steps if step.gate is not None]
    tags = {f"qhybrid.gate.{g.gate}": "pass" if g.passed else "fail" for g in gates}
    tags |= {"qhybrid.manifest": str(local),
             "qhybrid.ideal_counts_sha256": manifest.ideal_counts_sha256}
    if decision is not None:
        tags |= {"qhybrid.decision": "promote" if decision.promote else "refuse",
                 "qhybrid.aliases": ",".join(decision.aliases),
                 "qhybrid.reasons": " | ".join(decision.reasons)[:5000]}
    tracker.set_tags(run.mlflow_run_id, tags)
    if trial.history:
        tracker.log_series(run.mlflow_run_id, "objective",
                           [workload.sign * v for v in trial.history])
    return RecordedRun(manifest=str(local), execution=record,
                       ideal_counts_sha256=manifest.ideal_counts_sha256)


def finish_run(
    run: RunHandle, services: Services, recorded: RecordedRun, trial: TrialResult,
    steps: Sequence[StepOutcome], decision: PromotionDecision | None = None,
    registered_version: str | None = None,
) -> RunReport:
    """End the parent run FINISHED, drop the scratch folder, and report.

    Raises:
        TrackingError: MLflow could not be written.
    """
    spec = run.spec
    workload = run.workload(services)
    services.tracker.end_run(run.mlflow_run_id, "FINISHED")
    shutil.rmtree(Path(run.scratch), ignore_errors=True)
    return RunReport(
        kind=run.kind, experiment=spec.name, version=spec.version, family=spec.family.kind,
        objective=workload.objective, direction=workload.direction, backend=trial.backend,
        metrics=trial.metrics,
        parameters=dict(zip(workload.parameter_names, trial.parameters, strict=True)),
        gates=tuple(step.gate for step in steps if step.gate is not None),
        baselines=tuple(b for step in steps for b in step.baselines),
        decision=decision, registered_version=registered_version,
        mlflow_run_id=run.mlflow_run_id, prefect_flow_run_id=run.flow_run_id,
        manifest=recorded.manifest, data_overrides=run.data_overrides,
        execution=recorded.execution,
    )
