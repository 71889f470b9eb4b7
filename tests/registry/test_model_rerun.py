"""An identical rerun (same spec hash, same data, same results) registers no duplicate version: it
names the version that already holds its evidence. Real promotions on MLflow (SQLite)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mlflow.tracking import MlflowClient

from qhybrid.core import Settings
from qhybrid_usecases import state_store
from registry import Tracker, read_decisions, shared_decisions
from tests.registry.conftest import Promoted, promote

SPEC = "vqe-h2"


def test_an_identical_rerun_names_the_version_that_holds_its_evidence(
        promoted: Callable[[str], Promoted], settings: Settings) -> None:
    first = promoted(SPEC)
    again = promoted(SPEC)

    assert first.version == "1" and again.version == "1"
    assert again.decision.promote and again.decision.aliases == ()
    assert again.decision.reasons == (
        "version 1 already holds this evidence (same spec, data and results): no new version, "
        "no alias moved",)
    tracker = Tracker.for_settings(settings)
    [(_, versions)] = tracker.registered()
    assert [(v.version, v.aliases) for v in versions] == [("1", ("challenger", "champion"))]
    assert tracker.get_run(again.mlflow_run_id).tags["qhybrid.registered_version"] == "1"
    evidence = tracker.get_run(again.mlflow_run_id).tags["qhybrid.evidence_sha256"]
    assert versions[0].tags["qhybrid.evidence_sha256"] == evidence
    assert MlflowClient(settings.tracking_uri).list_artifacts(again.mlflow_run_id, "model") == []

    # Both decisions are logged, in the shared store and in the local mirror alike.
    shared = shared_decisions(state_store(settings).engine, SPEC)
    assert [(r.mlflow_run_id, r.registered_version, r.aliases) for r in shared] == [
        (first.mlflow_run_id, "1", ("challenger", "champion")), (again.mlflow_run_id, "1", ())]
    assert read_decisions(settings.promotion_log_path) == shared


def test_different_evidence_registers_a_new_version(
        promoted: Callable[[str], Promoted], settings: Settings, repo: Path,
        tmp_path: Path) -> None:
    first = promoted(SPEC)
    text = (repo / "specs" / f"{SPEC}.yaml").read_text()
    assert text.count("simulator: 22") == 1
    changed = tmp_path / "vqe-h2-seeded.yaml"
    changed.write_text(text.replace("simulator: 22", "simulator: 23"))
    other = promote(settings, changed)
    assert (first.version, other.version) == ("1", "2")
    assert other.decision.aliases != ()
