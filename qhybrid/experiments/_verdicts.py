"""Gate verdicts and the promotion decision: pure functions of evidence and policy.

Where a gate compares a sampled value with a limit, it allows for sampling noise: the limit
moves by :data:`ALLOWANCE` standard errors of the compared value, and the criterion's name says
so (e.g. ``degradation (limit + 2 stderr)``), so that a shot-noise fluctuation alone does not
fail a candidate. With exact values the standard error is 0, the limit is the policy's and the
criterion carries the plain name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from qhybrid.core import (
    BaselineGateSpec,
    BaselineResult,
    CriterionResult,
    Direction,
    GateResult,
    HardwareGateSpec,
    PromotionDecision,
    StatisticalGateSpec,
)
from qhybrid.experiments._executor import Counts
from qhybrid.experiments._family import Estimate

ALLOWANCE = 2.0
"""Standard errors by which a gate's limit moves when it compares a sampled value."""

_Op = Literal[">=", "<=", "=="]  # CriterionResult.op


def _criterion(name: str, value: float, op: _Op, limit: float) -> CriterionResult:
    if op == ">=":
        passed = value >= limit
    elif op == "<=":
        passed = value <= limit
    else:
        passed = value == limit
    passed = passed and math.isfinite(value)
    return CriterionResult(name=name, value=value, op=op, limit=limit, passed=passed)


def _allowing(
    name: str, value: float, op: _Op, limit: float, stderr: float
) -> CriterionResult:
    """``value op limit`` with the limit moved by :data:`ALLOWANCE` standard errors of
    ``value`` in its favour; the name says so when it moved."""
    if stderr <= 0.0:
        return _criterion(name, value, op, limit)
    shift = ALLOWANCE * stderr
    if op == ">=":
        return _criterion(f"{name} (limit - {ALLOWANCE:g} stderr)", value, op, limit - shift)
    return _criterion(f"{name} (limit + {ALLOWANCE:g} stderr)", value, op, limit + shift)


def _reasons(criteria: Sequence[CriterionResult]) -> tuple[str, ...]:
    return tuple(
        f"{c.name} = {c.value:.6g} is not {c.op} {c.limit:.6g}" for c in criteria if not c.passed
    )


def _beats(direction: Direction) -> _Op:
    return ">=" if direction == "maximise" else "<="


def confidence_interval(values: Sequence[float], confidence: float) -> tuple[float, float, float]:
    """Student-t interval for the mean of independent repeats.

    Returns:
        (mean, low, high). With zero spread the interval collapses onto the mean.
    """
    from scipy import stats  # 0.1 s, for the gates that judge repeats

    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    sem = float(stats.sem(data)) if len(data) > 1 else 0.0
    if sem == 0.0 or not math.isfinite(sem):
        return mean, mean, mean
    low, high = stats.t.interval(confidence, df=len(data) - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


def ideal_verdict(
    objective: str, value: float, threshold: float, direction: Direction, backend: str, *,
    stderr: float = 0.0,
) -> GateResult:
    """Gate 1: the optimised objective on the ideal simulator must beat the threshold.

    Args:
        objective: The objective's metric name.
        value: Its value on the ideal simulator.
        threshold: What it must beat.
        direction: Whether larger or smaller values are better.
        backend: Where it ran.
        stderr: The value's standard error: 0 for an exact simulator; for a sampled value the
            threshold moves by :data:`ALLOWANCE` of them.
    """
    criteria = (_allowing(objective, value, _beats(direction), threshold, stderr),)
    return GateResult(
        gate="ideal", passed=all(c.passed for c in criteria), backend=backend,
        metrics={objective: value}, criteria=criteria, reasons=_reasons(criteria),
    )


def statistical_verdict(
    objective: str,
    values: Sequence[float],
    policy: StatisticalGateSpec,
    direction: Direction,
    backend: str,
) -> GateResult:
    """Gate 2: the interval's worse end must beat the threshold, and it must be narrow enough."""
    mean, low, high = confidence_interval(values, policy.confidence)
    worse_end = low if direction == "maximise" else high
    half_width = (high - low) / 2
    criteria = (
        _criterion(f"{objective}_ci_{'low' if direction == 'maximise' else 'high'}", worse_end,
                   _beats(direction), policy.threshold),
        _criterion("ci_half_width", half_width, "<=", policy.tolerance),
    )
    metrics = {
        f"{objective}_mean": mean,
        f"{objective}_ci_low": low,
        f"{objective}_ci_high": high,
        "ci_half_width": half_width,
        "repeats": float(len(values)),
        "confidence": policy.confidence,
    }
    return GateResult(
        gate="statistical", passed=all(c.passed for c in criteria), backend=backend,
        metrics=metrics, criteria=criteria, reasons=_reasons(criteria),
    )


def total_variation_distance(a: Counts, b: Counts) -> float:
    """Total variation distance between two empirical distributions (0 = same, 1 = disjoint)."""
    na, nb = sum(a.values()), sum(b.values())
    keys = set(a) | set(b)
    return 0.5 * sum(abs(a.get(k, 0) / na - b.get(k, 0) / nb) for k in keys)


def hardware_verdict(
    objective: str,
    metrics: dict[str, float],
    degradation: Estimate,
    distance: float,
    policy: HardwareGateSpec,
    backend: str,
    *,
    downgraded: bool = False,
    improvement_low: float | None = None,
) -> GateResult:
    """Gate 3: objective loss and distribution distance from ideal within policy.

    The degradation compares a sampled hardware value with the ideal one: its limit is
    ``max_degradation`` plus :data:`ALLOWANCE` times the degradation's standard error. A
    downgraded result (one that did not run on the target) can never pass. When the policy
    requires mitigation to help, the low end of the improvement's interval must be above 0.
    """
    criteria = [
        _allowing("degradation", degradation.value, "<=", policy.max_degradation,
                  degradation.stderr),
        _criterion("total_variation_distance", distance, "<=", policy.max_distance),
    ]
    if downgraded:
        criteria.append(_criterion("ran_on_target", 0.0, "==", 1.0))
    if policy.mitigation is not None and policy.mitigation.require_improvement:
        if improvement_low is None:  # no mitigated arm ran (e.g. a fallback): no evidence
            criteria.append(_criterion("mitigation_measured", 0.0, "==", 1.0))
        else:
            criteria.append(_criterion("mitigation_improvement_low", improvement_low, ">=", 0.0))
    return GateResult(
        gate="hardware", passed=all(c.passed for c in criteria), backend=backend,
        metrics={**metrics, "degradation": degradation.value,
                 "degradation.stderr": degradation.stderr, "total_variation_distance": distance},
        criteria=tuple(criteria), reasons=_reasons(criteria),
    )


def mitigation_improvement(
    ideal: float, unmitigated: Sequence[float], mitigated: Sequence[float], confidence: float
) -> tuple[float, float, float]:
    """How much closer to the ideal value mitigation brings an estimate, with an interval.

    Each seeded repeat pairs one unmitigated and one mitigated estimate of the same circuit;
    its improvement is ``|unmitigated - ideal| - |mitigated - ideal|`` (positive = helped).

    Returns:
        (mean, low, high): the Student-t interval over the repeats.
    """
    gains = [abs(u - ideal) - abs(m - ideal) for u, m in zip(unmitigated, mitigated, strict=True)]
    return confidence_interval(gains, confidence)


def baseline_verdict(
    quantum_quality: Estimate, baselines: Sequence[BaselineResult], policy: BaselineGateSpec,
) -> GateResult:
    """Gate 4: the quantum result against the best classical quality, scaled by policy.

    The quantum quality is sampled: the limit on its ratio to the best baseline is lowered by
    :data:`ALLOWANCE` standard errors of that ratio.
    """
    best = max(b.quality for b in baselines)
    ratio = quantum_quality.value / best if best else 0.0
    criteria = (
        _allowing("quality_vs_best_baseline", ratio, ">=", policy.min_relative_quality,
                  quantum_quality.stderr / best if best else 0.0),
    )
    metrics = {"quantum_quality": quantum_quality.value,
               "quantum_quality.stderr": quantum_quality.stderr, "best_baseline_quality": best}
    for b in baselines:
        metrics[f"{b.solver}_quality"] = b.quality
        metrics[f"{b.solver}_seconds"] = b.seconds
    return GateResult(
        gate="baseline", passed=all(c.passed for c in criteria), backend="classical",
        metrics=metrics, criteria=criteria, reasons=_reasons(criteria),
    )


def decide(
    gates: Sequence[GateResult],
    score: float,
    champion_score: float | None,
    direction: Direction,
) -> PromotionDecision:
    """Promote only when every gate passed; take ``champion`` only by beating the holder.

    Args:
        gates: Every gate's result, in order.
        score: The candidate's primary metric on the hardware gate.
        champion_score: The current champion's score, or None if there is none.
        direction: Whether larger or smaller scores are better.
    """
    failed = [g for g in gates if not g.passed]
    if failed:
        reasons = tuple(f"gate {g.gate} failed: {r}" for g in failed for r in (g.reasons or ("",)))
        return PromotionDecision(
            promote=False, reasons=reasons, score=score, champion_score=champion_score
        )
    if champion_score is None:
        return PromotionDecision(
            promote=True, aliases=("challenger", "champion"), score=score,
            reasons=("every gate passed", "no champion yet"), champion_score=None,
        )
    better = score > champion_score if direction == "maximise" else score < champion_score
    if better:
        return PromotionDecision(
            promote=True, aliases=("challenger", "champion"), score=score,
            champion_score=champion_score,
            reasons=("every gate passed", f"score {score:.6g} beats champion {champion_score:.6g}"),
        )
    return PromotionDecision(
        promote=True, aliases=("challenger",), score=score, champion_score=champion_score,
        reasons=("every gate passed",
                 f"score {score:.6g} does not beat champion {champion_score:.6g}"),
    )
