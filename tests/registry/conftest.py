"""Fixtures for the model registry tests: a real promotion through the use cases, on the
test's own MLflow (SQLite) and state stores."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import qhybrid_usecases as usecases
from qhybrid.core import PromotionDecision, RunOptions, Settings, load_spec
from qhybrid_usecases import Services


@dataclass(frozen=True)
class Promoted:
    """What one promotion left: its run, decision and registered version."""

    name: str
    mlflow_run_id: str
    decision: PromotionDecision
    version: str | None


def promote(settings: Settings, spec_path: Path) -> Promoted:
    """Every gate, the decision, the evidence and the registry, as the promotion flow runs them
    (without Prefect)."""
    spec = load_spec(spec_path)
    services = Services.open(settings)
    run = usecases.open_run(spec, RunOptions(), services, kind="promotion", flow_run_id=None)
    ideal = usecases.ideal_gate(run, services)
    statistical = usecases.statistical_gate(run, services)
    assert ideal.trial is not None
    hardware = usecases.hardware_gate(run, services, ideal.trial)
    assert hardware.trial is not None
    baseline = usecases.baseline_gate(run, services, hardware.trial)
    steps = [ideal, statistical, hardware, baseline]
    decision = usecases.decide_promotion(run, services, [s.gate for s in steps if s.gate],
                                         hardware.trial)
    recorded = usecases.record_evidence(run, services, ideal.trial, steps, decision)
    version = usecases.apply_promotion(run, services, decision)
    usecases.finish_run(run, services, recorded, ideal.trial, steps, decision, version)
    return Promoted(spec.name, run.mlflow_run_id, decision, version)


@pytest.fixture
def promoted(settings: Settings, repo: Path) -> Callable[[str], Promoted]:
    """``promoted("qaoa-maxcut-small")`` promotes ``specs/<name>.yaml`` on this test's stores."""
    return lambda name: promote(settings, repo / "specs" / f"{name}.yaml")
