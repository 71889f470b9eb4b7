"""Recording a run's evidence (manifest, circuits, plots, metrics) and finishing it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

import registry
from qhybrid.core import (
    CircuitRecord,
    DataPinRecord,
    ExecutionRecord,
    GateResult,
    HardwareCountsRecord,
    ManifestSeeds,
    PromotionDecision,
    RunManifest,
    RunReport,
    TrialResult,
)
from qhybrid.experiments import Workload, bind, write_circuit
from qhybrid_usecases._drawing import render
from qhybrid_usecases._run import (
    RunHandle,
    StepOutcome,
    draw_trial,
    report_progress,
    run_executor,
    scratch,
)
from qhybrid_usecases._services import Services
from registry import (
    git_commit,
    package_versions,
    share_manifest,
    write_manifest,
)

_DIAGRAM_WIDTH = 120  # characters per row of a circuit diagram before it folds


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


def _write_artifacts(run: RunHandle, services: Services, workload: Workload,
                     trial: TrialResult, steps: Sequence[StepOutcome]) -> list[CircuitRecord]:
    """Circuits (OpenQASM 3 and QPY) into the scratch folder; their diagrams, the histogram,
    the convergence plot and, for a promotion, the ideal and hardware distributions side by
    side handed to the run's plot thread, logged under ``experiment/`` like the scratch
    folder (``circuits/<role>.png``, ``plots/*.png``)."""
    folder = scratch(run)
    title = f"{run.spec.name} {run.spec.version}"
    circuits = []
    diagrams = {}
    for role, circuit in (("ansatz", workload.ansatz),
                          ("final", bind(workload, workload.measured, trial.parameters))):
        circuits.append(write_circuit(circuit, folder / "circuits", role))
        diagrams[role] = str(circuit.draw(output="text", fold=_DIAGRAM_WIDTH))
    hardware = [(step.gate.mlflow_run_id, step.trial) for step in steps
                if step.gate is not None and step.gate.gate == "hardware"
                and step.trial is not None]
    # When this trial is the ideal gate's, that gate drew its histogram and convergence, and
    # the hardware gate (fed the same trial) its distributions: the record logs their files,
    # kept by the plot thread, rather than drawing the same figures again.
    ideal_run = next((step.gate.mlflow_run_id for step in steps if step.gate is not None
                      and step.gate.gate == "ideal" and step.trial == trial), None)
    drawer = services.drawer

    def gates_png(gate_run: str | None, path: Path) -> bool:
        kept = drawer.kept(gate_run, path.name) if gate_run and ideal_run else None
        if kept is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(kept)
        return kept is not None

    def draw(out: Path) -> None:
        for role, diagram in diagrams.items():
            render(registry.circuit_png, diagram, out / "circuits" / f"{role}.png",
                   title=f"{title}: {role} circuit")
        plots = out / "plots"
        draw_trial(workload, trial, plots, title,
                   drawn=lambda name: gates_png(ideal_run, plots / name))
        for gate_run, other in hardware:
            if not gates_png(gate_run, plots / "ideal_vs_hardware.png"):
                render(registry.distributions_png, trial.counts, other.counts,
                       plots / "ideal_vs_hardware.png", title=title,
                       hardware_label=other.backend)

    run_id = run.mlflow_run_id
    services.drawer.submit(
        draw, lambda out: services.tracker.log_artifacts(run_id, out, "experiment"))
    return circuits


def _comparison(gates: Sequence[GateResult], decision: PromotionDecision | None,
                objective: str) -> tuple[dict[str, float], dict[str, str]]:
    """What the MLflow compare and chart views set side by side across runs: each gate's
    verdict (1 pass, 0 fail) and metrics, and the decision with its score, as metrics; each
    gate's verdict and backend and the decision, as params."""
    metrics: dict[str, float] = {}
    params: dict[str, str] = {}
    for gate in gates:
        metrics[f"gate.{gate.gate}.passed"] = float(gate.passed)
        metrics |= {f"gate.{gate.gate}.{k}": v for k, v in gate.metrics.items()}
        params[f"gate.{gate.gate}.verdict"] = "pass" if gate.passed else "fail"
        params[f"gate.{gate.gate}.backend"] = gate.backend
    if decision is not None:
        metrics["promotion.promoted"] = float(decision.promote)
        if decision.score is not None:
            metrics["promotion.score"] = decision.score
        if decision.champion_score is not None:
            metrics["promotion.champion_score"] = decision.champion_score
        params |= {"promotion.decision": "promote" if decision.promote else "refuse",
                   "promotion.aliases": ",".join(decision.aliases) or "none",
                   "promotion.score_metric": f"hardware {objective}"}
    return metrics, params


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


def _hardware_counts(run: RunHandle, steps: Sequence[StepOutcome]) -> HardwareCountsRecord | None:
    """The hardware gate's counts (a promotion's), with the backend that sampled them and
    whether it simulated the spec's noise section, for a replay to sample them again."""
    step = next((s for s in steps if s.gate is not None and s.gate.gate == "hardware"), None)
    if step is None or step.gate is None or step.trial is None:
        return None
    on_target = step.gate.downgraded_from is None
    return HardwareCountsRecord(
        backend=step.trial.backend,
        noise_applied=on_target and run.spec.gates.hardware.noise is not None,
        counts=step.trial.counts, counts_sha256=counts_sha256(step.trial.counts))


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
    circuits = _write_artifacts(run, services, workload, trial, steps)
    counts = _ideal_counts(run, services, workload, trial)
    backends: dict[str, dict[str, object]] = {}
    for step in steps:
        backends |= step.backends
    noise = spec.gates.hardware.noise
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
        metrics=trial.metrics,
        # The noise the hardware gate simulated, so a replay rebuilds the same model.
        noise=noise.model_dump(mode="json") if noise is not None else None,
        noise_sha256=noise.sha256() if noise is not None else None,
        hardware=_hardware_counts(run, steps),
    )
    folder = scratch(run)
    write_manifest(folder / "manifest.json", manifest)
    (folder / "spec.json").write_text(spec.model_dump_json(indent=1), encoding="utf-8")
    tracker.log_artifacts(run.mlflow_run_id, folder, "experiment")
    local = write_manifest(services.settings.manifests_path / f"{run.mlflow_run_id}.json", manifest)
    share_manifest(services.store.engine, manifest)  # where a team (and a service) reads it

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
    gates = [step.gate for step in steps if step.gate is not None]
    compared, params = _comparison(gates, decision, workload.objective)
    tags = {f"qhybrid.gate.{g.gate}": "pass" if g.passed else "fail" for g in gates}
    tags |= {f"qhybrid.gate.{g.gate}.reasons": " | ".join(g.reasons)[:5000]
             for g in gates if g.reasons}
    tags |= {"qhybrid.manifest": str(local),
             "qhybrid.ideal_counts_sha256": manifest.ideal_counts_sha256}
    if decision is not None:
        tags |= {"qhybrid.decision": "promote" if decision.promote else "refuse",
                 "qhybrid.aliases": ",".join(decision.aliases),
                 "qhybrid.reasons": " | ".join(decision.reasons)[:5000]}
    series = {"objective": [workload.sign * v for v in trial.history]} if trial.history else {}
    tracker.log_values(run.mlflow_run_id, params=params, metrics=metrics | compared, tags=tags,
                       series=series)
    return RecordedRun(manifest=str(local), execution=record,
                       ideal_counts_sha256=manifest.ideal_counts_sha256)


def finish_run(
    run: RunHandle, services: Services, recorded: RecordedRun, trial: TrialResult,
    steps: Sequence[StepOutcome], decision: PromotionDecision | None = None,
    registered_version: str | None = None,
) -> RunReport:
    """Record the registered version (a promotion's), wait for the run's plots, end the
    parent run FINISHED, drop the scratch folder, and report.

    Raises:
        TrackingError: MLflow could not be written.
        Exception: What drawing or logging a plot raised.
    """
    spec = run.spec
    workload = run.workload(services)
    tracker = services.tracker
    if run.kind == "promotion":
        tracker.log_values(
            run.mlflow_run_id,
            params={"promotion.registered_version": registered_version or "none"},
            metrics={} if registered_version is None
            else {"promotion.registered_version": float(registered_version)})
    services.drawer.wait()  # every plot logged before the run is FINISHED
    tracker.end_run(run.mlflow_run_id, "FINISHED")
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

