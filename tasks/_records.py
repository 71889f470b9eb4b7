"""Opening and closing the records of a run: MLflow parent run, manifest, registry, log."""

from __future__ import annotations

import datetime as dt
import shutil

from backends import StateStore, release_leases
from qhybrid.core import (
    BaselineResult,
    ExperimentSpec,
    GateResult,
    PromotionDecision,
    PromotionLogRecord,
    RunCancelledError,
    RunManifest,
    RunReport,
    Settings,
)
from qhybrid.experiments import Execution
from registry import (
    SCORE_TAG,
    Tracker,
    append_decision,
    git_commit,
    package_versions,
    write_manifest,
)
from tasks._work import (
    RunSession,
    counts_sha256,
    decision_tags,
    ideal_counts,
    new_scratch,
    open_for_release,
    prepare_inputs,
    write_artifacts,
)


def tracker_for(settings: Settings) -> Tracker:
    """The MLflow tracker for these settings."""
    return Tracker.for_settings(settings)


def open_session(
    spec: ExperimentSpec,
    settings: Settings,
    *,
    kind: str,
    allow_unpinned_data: bool,
    flow_run_id: str | None,
) -> RunSession:
    """Validate inputs, then open the MLflow parent run. Nothing is written if validation fails.

    Raises:
        InvalidInputError: Bad data or a spec that does not fit its data.
        TrackingError: MLflow could not be written.
    """
    instance, workload, pins, overrides = prepare_inputs(
        spec, settings, allow_unpinned_data=allow_unpinned_data
    )
    store = StateStore(settings.state_store_url)
    tracker = tracker_for(settings)
    commit = git_commit(settings.project_root)
    tags = {
        "qhybrid.kind": kind,
        "qhybrid.experiment": spec.name,
        "qhybrid.version": spec.version,
        "qhybrid.family": spec.family.kind,
        "qhybrid.spec_sha256": spec.sha256(),
        "qhybrid.git_commit": commit or "unknown",
        "qhybrid.prefect_flow_run_id": flow_run_id or "none",
        "qhybrid.data_overrides": "; ".join(overrides) or "none",
        **{f"dvc.md5.{path}": pin.md5 for path, pin in pins.items()},
        **{f"package.{name}": version for name, version in package_versions().items()},
    }
    parent = tracker.start_run(f"{kind}:{spec.name}@{spec.version}", tags=tags)
    tracker.log_params(parent, spec.flat_params())
    return RunSession(
        spec=spec, settings=settings, instance=instance, workload=workload, pins=pins,
        data_overrides=overrides, tracker=tracker, parent_run_id=parent, scratch=new_scratch(),
        store=store, flow_run_id=flow_run_id,
    )


def failure_reason(exc: BaseException) -> tuple[str, str]:
    """Why a flow stopped, and the MLflow status for it: ``(reason, FAILED | KILLED)``."""
    name = type(exc).__name__
    if isinstance(exc, RunCancelledError):
        return "flow cancelled", "KILLED"
    if name == "TerminationSignal":  # SIGTERM: a worker cancelling its flow run, or shutdown
        return "flow terminated", "KILLED"
    if isinstance(exc, TimeoutError) or name == "CancelledError":  # timeout_seconds exceeded
        return "flow timed out", "FAILED"
    if isinstance(exc, KeyboardInterrupt):
        return "flow interrupted", "KILLED"
    return f"flow failed: {name}", "FAILED"


def fail_session(session: RunSession, exc: BaseException | None = None) -> list[str]:
    """Release every lease the run holds, end the parent run FAILED (or KILLED when cancelled),
    drop the scratch folder.

    Returns:
        One line per lease released (or whose release failed).
    """
    reason, status = failure_reason(exc) if exc is not None else ("flow failed", "FAILED")
    released: list[str] = []
    if session.flow_run_id is not None:
        outcomes = release_leases(session.store, session.flow_run_id,
                                  lambda name: open_for_release(session, name), reason=reason)
        session.log.count("leases_closed", sum(1 for o in outcomes if o.released))
        released = [str(o) for o in outcomes]
    record = session.log.record()
    session.tracker.set_tags(session.parent_run_id, {
        "qhybrid.failure": reason,
        "qhybrid.execution": f"{record.provider_submissions} provider submissions, "
                             f"{len(record.fallbacks)} fallbacks, {record.breaker_trips} breaker trips"})
    session.tracker.log_dict(session.parent_run_id, record.model_dump(mode="json"), "execution.json")
    session.tracker.end_run(session.parent_run_id, status)
    shutil.rmtree(session.scratch, ignore_errors=True)
    return released


def apply_decision(session: RunSession, decision: PromotionDecision) -> str | None:
    """Register a version and move aliases when promoting; log every decision.

    Returns:
        The registered model version, or None when the decision refused promotion.
    """
    spec = session.spec
    version: str | None = None
    if decision.promote:
        version = session.tracker.register_version(
            spec.name, session.parent_run_id, "experiment",
            tags={"qhybrid.version": spec.version, "qhybrid.spec_sha256": spec.sha256(),
                  SCORE_TAG: repr(decision.score)},
        )
        for alias in decision.aliases:
            session.tracker.set_alias(spec.name, alias, version)
    append_decision(
        session.settings.promotion_log_path,
        PromotionLogRecord(
            timestamp=dt.datetime.now(dt.UTC).isoformat(), experiment=spec.name,
            version=spec.version, spec_sha256=spec.sha256(), mlflow_run_id=session.parent_run_id,
            promote=decision.promote, registered_version=version, aliases=decision.aliases,
            reasons=decision.reasons, score=decision.score, champion_score=decision.champion_score,
        ),
    )
    return version


def close_session(
    session: RunSession,
    *,
    kind: str,
    backend: str,
    execution: Execution,
    gates: list[GateResult],
    baselines: list[BaselineResult],
    decision: PromotionDecision | None,
    flow_run_id: str | None,
) -> RunReport:
    """Write the manifest and artifacts, apply a decision, finish the parent run.

    ``execution`` is the run whose circuits, counts and convergence are recorded (the ideal
    gate's for a promotion). Its parameters are replayed on ideal Aer for the manifest.
    """
    spec = session.spec
    tracker = session.tracker
    write_artifacts(session, execution, title=f"{spec.name} {spec.version}")
    counts = ideal_counts(session, execution, backend)
    manifest = RunManifest(
        kind=kind,  # type: ignore[arg-type]
        experiment=spec.name, version=spec.version, spec=spec.model_dump(mode="json"),
        spec_sha256=spec.sha256(), parameters=tuple(float(x) for x in execution.parameters),
        parameter_names=session.workload.parameter_names,
        seeds=spec.seeds.model_dump(), shots=spec.shots, backends=session.backends,
        circuits=tuple(session.circuits), ideal_counts=counts, ideal_counts_sha256=counts_sha256(counts),
        data={path: pin.to_dict() for path, pin in session.pins.items()},
        packages=package_versions(), git_commit=git_commit(session.settings.project_root),
        prefect_flow_run_id=flow_run_id, mlflow_run_id=session.parent_run_id,
        created=dt.datetime.now(dt.UTC).isoformat(), execution=session.log.record(),
    )
    write_manifest(session.scratch / "manifest.json", manifest)
    (session.scratch / "spec.json").write_text(spec.model_dump_json(indent=1), encoding="utf-8")
    tracker.log_artifacts(session.parent_run_id, session.scratch, "experiment")
    local = write_manifest(session.settings.manifests_path / f"{session.parent_run_id}.json", manifest)

    objective = session.workload.objective
    final_metrics = {f"final.{k}": v for k, v in execution.metrics.items()}
    final_metrics |= {"final.quantum_seconds": execution.quantum_seconds,
                      "final.classical_seconds": execution.classical_seconds,
                      "shots": float(spec.shots)}
    record = manifest.execution
    assert record is not None
    final_metrics |= {"execution.provider_submissions": float(record.provider_submissions),
                      "execution.reattachments": float(record.reattachments),
                      "execution.breaker_trips": float(record.breaker_trips),
                      "execution.fallbacks": float(len(record.fallbacks)),
                      "execution.retries": float(sum(record.retries_by_class.values())),
                      "execution.qpu_seconds_estimate": record.qpu_seconds_estimate}
    tracker.log_metrics(session.parent_run_id, final_metrics)
    tracker.set_tags(session.parent_run_id, {
        f"qhybrid.gate.{g.gate}": "pass" if g.passed else "fail" for g in gates
    } | {"qhybrid.manifest": str(local), "qhybrid.ideal_counts_sha256": manifest.ideal_counts_sha256})
    if execution.history:
        tracker.log_series(session.parent_run_id, "objective",
                           [session.workload.sign * v for v in execution.history])

    version = None
    if decision is not None:
        tracker.set_tags(session.parent_run_id, decision_tags(decision))
        version = apply_decision(session, decision)
    tracker.end_run(session.parent_run_id, "FINISHED")
    shutil.rmtree(session.scratch, ignore_errors=True)
    return RunReport(
        kind=kind,  # type: ignore[arg-type]
        experiment=spec.name, version=spec.version, family=spec.family.kind,
        objective=objective, direction=session.workload.direction, backend=backend,
        metrics=execution.metrics,
        parameters=dict(zip(session.workload.parameter_names,
                            (float(x) for x in execution.parameters), strict=True)),
        gates=tuple(gates),
        baselines=tuple(baselines), decision=decision, registered_version=version,
        mlflow_run_id=session.parent_run_id, prefect_flow_run_id=flow_run_id,
        manifest=str(local), data_overrides=session.data_overrides,
        execution=manifest.execution,
    )
