"""The promotion: a pure decision from the gates' evidence, then a small apply step.

Decide and apply are separate use cases, so that an approval can pause between them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from qhybrid.core import GateResult, PromotionDecision, PromotionLogRecord, TrialResult
from qhybrid.experiments import decide
from qhybrid_usecases._run import RunHandle
from qhybrid_usecases._services import Services
from registry import SCORE_TAG, append_decision


def decide_promotion(
    run: RunHandle, services: Services, gates: Sequence[GateResult], hardware: TrialResult
) -> PromotionDecision:
    """Promote only if every gate passed; take ``champion`` only by beating its holder's score
    (the hardware gate's objective)."""
    workload = run.workload(services)
    champion = services.tracker.champion_score(run.spec.name)
    return decide(gates, hardware.metrics[workload.objective], champion, workload.direction)


def apply_promotion(run: RunHandle, services: Services, decision: PromotionDecision) -> str | None:
    """Register a model version and move its aliases when promoting; log every decision.

    Returns:
        The registered version, or None when the decision refused promotion.

    Raises:
        TrackingError: The registry or the promotion log could not be written.
    """
    spec = run.spec
    version: str | None = None
    if decision.promote:
        version = services.tracker.register_version(
            spec.name, run.mlflow_run_id, "experiment",
            tags={"qhybrid.version": spec.version, "qhybrid.spec_sha256": spec.sha256(),
                  SCORE_TAG: repr(decision.score)},
        )
        for alias in decision.aliases:
            services.tracker.set_alias(spec.name, alias, version)
        services.tracker.set_tags(run.mlflow_run_id, {"qhybrid.registered_version": version})
    append_decision(
        services.settings.promotion_log_path,
        PromotionLogRecord(
            timestamp=dt.datetime.now(dt.UTC).isoformat(), experiment=spec.name,
            version=spec.version, spec_sha256=spec.sha256(), mlflow_run_id=run.mlflow_run_id,
            promote=decision.promote, registered_version=version, aliases=decision.aliases,
            reasons=decision.reasons, score=decision.score, champion_score=decision.champion_score,
        ),
    )
    return version
