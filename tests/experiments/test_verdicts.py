"""Gate verdicts and the promotion decision are pure functions of evidence and policy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qhybrid.core import (
    BaselineGateSpec,
    BaselineResult,
    GateResult,
    HardwareGateSpec,
    StatisticalGateSpec,
)
from qhybrid.experiments import (
    Estimate,
    baseline_verdict,
    confidence_interval,
    decide,
    hardware_verdict,
    statistical_verdict,
    total_variation_distance,
)


def _gate(name: str, passed: bool) -> GateResult:
    return GateResult(gate=name, passed=passed, backend="aer", metrics={},
                      reasons=() if passed else ("x is not >= 1",))


PASSING = [_gate(g, True) for g in ("ideal", "statistical", "hardware", "baseline")]


def test_refuses_when_any_gate_fails() -> None:
    gates = [*PASSING[:2], _gate("hardware", False), PASSING[3]]
    decision = decide(gates, 0.9, None, "maximise")
    assert not decision.promote and decision.aliases == ()
    assert any("hardware" in r for r in decision.reasons)


def test_first_promotion_takes_champion() -> None:
    decision = decide(PASSING, 0.8, None, "maximise")
    assert decision.promote and decision.aliases == ("challenger", "champion")


@pytest.mark.parametrize(("direction", "score", "champion", "takes"), [
    ("maximise", 0.9, 0.8, True), ("maximise", 0.7, 0.8, False),
    ("minimise", 0.01, 0.02, True), ("minimise", 0.03, 0.02, False),
])
def test_champion_only_when_better(direction, score, champion, takes) -> None:
    decision = decide(PASSING, score, champion, direction)
    assert decision.promote
    assert ("champion" in decision.aliases) is takes


def test_statistical_interval_and_tolerance() -> None:
    policy = StatisticalGateSpec(repeats=5, threshold=0.7, tolerance=0.01)
    tight = statistical_verdict("r", [0.80, 0.801, 0.799, 0.8, 0.8], policy, "maximise", "aer")
    assert tight.passed
    wide = statistical_verdict("r", [0.7, 0.9, 0.75, 0.85, 0.8], policy, "maximise", "aer")
    assert not wide.passed and any("ci_half_width" in r for r in wide.reasons)
    low = statistical_verdict("r", [0.6, 0.6, 0.6], policy, "maximise", "aer")
    assert not low.passed


@given(st.lists(st.floats(-10, 10), min_size=2, max_size=30))
def test_interval_contains_mean(values: list[float]) -> None:
    mean, low, high = confidence_interval(values, 0.95)
    assert low - 1e-9 <= mean <= high + 1e-9


def test_downgraded_result_never_passes_hardware_gate() -> None:
    policy = HardwareGateSpec(max_degradation=1, max_distance=1)
    assert hardware_verdict("r", {}, Estimate(0.0), 0.0, policy, "b").passed
    assert not hardware_verdict("r", {}, Estimate(0.0), 0.0, policy, "b", downgraded=True).passed


def test_total_variation_distance() -> None:
    assert total_variation_distance({"0": 5}, {"0": 10}) == 0
    assert total_variation_distance({"0": 5}, {"1": 5}) == 1
    assert total_variation_distance({"0": 1, "1": 1}, {"0": 1}) == pytest.approx(0.5)


def test_baseline_verdict_scales_by_best() -> None:
    baselines = [BaselineResult(solver="brute-force", objective=13, quality=1, seconds=0,
                                exact=True)]
    policy = BaselineGateSpec(solvers=("brute-force",), min_relative_quality=0.7)
    assert baseline_verdict(Estimate(0.75), baselines, policy).passed
    assert not baseline_verdict(Estimate(0.65), baselines, policy).passed
