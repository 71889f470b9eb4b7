"""The promotion: a pure decision from the gates' evidence, then a small apply step.

Decide and apply are separate use cases, so that an approval can pause between them.

A promoted run becomes a registered version whose source is a pyfunc model (see
:mod:`qhybrid_usecases._predict`). A rerun with the same evidence (the spec's hash, the data's
md5s, the gates' results and the score; :func:`evidence_sha256`) registers nothing: it names
the version that already holds that evidence. Every decision goes to the promotion log in three
places: the run's ``promotion.json`` artifact and the shared state store, where a team reads
them, and the local JSONL mirror.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from qhybrid.core import (
    DataError,
    GateResult,
    PromotionDecision,
    PromotionLogRecord,
    RunManifest,
    TrackingError,
    TrialResult,
)
from qhybrid.experiments import decide
from qhybrid_usecases._predict import interface
from qhybrid_usecases._run import RunHandle
from qhybrid_usecases._services import Services
from registry import (
    SCORE_TAG,
    append_decision,
    file_md5,
    log_model,
    read_manifest,
    share_decision,
)

EVIDENCE_TAG = "qhybrid.evidence_sha256"
"""On the parent run (set when deciding) and on the registered version."""


def evidence_sha256(spec_sha256: str, pins: Mapping[str, Mapping[str, object]],
                    gates: Sequence[GateResult], score: float | None) -> str:
    """SHA-256 of what a promotion rests on: the spec, the data, each gate's backend, verdict and
    metrics, and the score (canonical JSON). Durations (``seconds``, ``<solver>_seconds``) and
    run ids are left out: they differ between two runs of the same seeded work."""
    document = {
        "spec_sha256": spec_sha256,
        "data": {path: pin.get("md5") for path, pin in sorted(pins.items())},
        "gates": [{"gate": g.gate, "passed": g.passed, "backend": g.backend,
                   "metrics": {k: v for k, v in g.metrics.items() if not k.endswith("seconds")}}
                  for g in gates],
        "score": score,
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def decide_promotion(
    run: RunHandle, services: Services, gates: Sequence[GateResult], hardware: TrialResult
) -> PromotionDecision:
    """Promote only if every gate passed; take ``champion`` only by beating its holder's score
    (the hardware gate's objective). Evidence a version already holds is not promoted again:
    the decision names that version and moves no alias.

    Raises:
        TrackingError: The registry cannot be read or the run tagged.
    """
    workload = run.workload(services)
    tracker = services.tracker
    champion = tracker.champion_score(run.spec.name)
    decision = decide(gates, hardware.metrics[workload.objective], champion, workload.direction)
    evidence = evidence_sha256(run.spec.sha256(), run.pins, gates, decision.score)
    tracker.set_tags(run.mlflow_run_id, {EVIDENCE_TAG: evidence})
    holder = tracker.version_with_tag(run.spec.name, EVIDENCE_TAG, evidence) \
        if decision.promote else None
    if holder is None:
        return decision
    return decision.model_copy(update={"aliases": (), "reasons": (
        f"version {holder.version} already holds this evidence (same spec, data and results): "
        "no new version, no alias moved",)})


def apply_promotion(run: RunHandle, services: Services, decision: PromotionDecision) -> str | None:
    """Register a model version and move its aliases when promoting; log every decision.

    Returns:
        The registered version (the one that already held this evidence, for an identical
        rerun), or None when the decision refused promotion.

    Raises:
        TrackingError: The registry, the manifest or the promotion log could not be written.
        DataError: The input data changed since the run recorded it.
        Exception: What drawing or logging a plot raised: no decision is applied before the
            evidence is complete.
    """
    services.drawer.wait()
    spec = run.spec
    tracker = services.tracker
    tags = tracker.get_run(run.mlflow_run_id).tags
    if "qhybrid.manifest" not in tags:
        raise TrackingError(f"run {run.mlflow_run_id} recorded no manifest: record its "
                            "evidence before applying its promotion")
    manifest = read_manifest(Path(tags["qhybrid.manifest"]))
    evidence = tags.get(EVIDENCE_TAG, "")
    version: str | None = None
    if decision.promote:
        holder = tracker.version_with_tag(spec.name, EVIDENCE_TAG, evidence) if evidence \
            else None
        if holder is not None:
            version = holder.version
        else:
            version = _register(run, services, manifest, decision, evidence)
        tracker.set_tags(run.mlflow_run_id, {"qhybrid.registered_version": version})
    record = PromotionLogRecord(
        timestamp=dt.datetime.now(dt.UTC).isoformat(), experiment=spec.name,
        version=spec.version, spec_sha256=spec.sha256(), mlflow_run_id=run.mlflow_run_id,
        promote=decision.promote, registered_version=version, aliases=decision.aliases,
        reasons=decision.reasons, score=decision.score, champion_score=decision.champion_score,
    )
    tracker.log_dict(run.mlflow_run_id, record.model_dump(mode="json"), "promotion.json")
    share_decision(services.store.engine, record)
    append_decision(services.settings.promotion_log_path, record)
    return version


def _register(run: RunHandle, services: Services, manifest: RunManifest,
              decision: PromotionDecision, evidence: str) -> str:
    """Log the run's pyfunc model, register it as a new version and move the aliases."""
    spec = run.spec
    root = services.settings.project_root
    inputs = {}
    for rel, pin in manifest.data.items():
        if file_md5(root / rel) != pin.md5:
            raise DataError(f"{rel} changed since the run recorded it (md5 {pin.md5})",
                            field="dataset.path")
        inputs[rel] = root / rel
    if manifest.mlflow_run_id != run.mlflow_run_id:
        raise TrackingError(f"the manifest of run {run.mlflow_run_id} names run "
                            f"{manifest.mlflow_run_id}")
    from qhybrid_usecases._pyfunc import PromotedModel  # mlflow.pyfunc: only when registering

    path = log_model(services.tracker, run.mlflow_run_id, PromotedModel(), manifest, inputs,
                     interface(manifest))
    version = services.tracker.register_version(
        spec.name, run.mlflow_run_id, path,
        tags={"qhybrid.version": spec.version, "qhybrid.spec_sha256": spec.sha256(),
              SCORE_TAG: repr(decision.score), EVIDENCE_TAG: evidence},
    )
    for alias in decision.aliases:
        services.tracker.set_alias(spec.name, alias, version)
    return version
