"""Every wire contract round-trips through JSON; errors know their class."""

from __future__ import annotations

import pytest

from qhybrid.core import (
    BackendRejectedError,
    BaselineResult,
    CircuitRecord,
    CriterionResult,
    DataError,
    GateResult,
    PromotionDecision,
    PromotionLogRecord,
    RunManifest,
    RunReport,
    SubmissionError,
    TransportError,
    is_transient,
)

GATE = GateResult(gate="ideal", passed=True, backend="aer", metrics={"x": 1.0},
                  criteria=(CriterionResult(name="x", value=1.0, op=">=", limit=0.5, passed=True),))
SAMPLES = [
    GATE,
    BaselineResult(solver="brute-force", objective=13, quality=1, seconds=0.1, exact=True),
    PromotionDecision(promote=True, aliases=("challenger",), reasons=("ok",), score=0.8),
    PromotionLogRecord(timestamp="t", experiment="e", version="1.0.0", spec_sha256="h",
                       mlflow_run_id="r", promote=False, registered_version=None, aliases=(),
                       reasons=("no",), score=None, champion_score=None),
    RunManifest(kind="run", experiment="e", version="1.0.0", spec={"a": 1}, spec_sha256="h",
                parameters=(0.1,), parameter_names=("theta[0]",), seeds={"simulator": 1},
                shots=10, backends={}, circuits=(CircuitRecord(role="final", sha256="s",
                num_qubits=2, depth=3),), ideal_counts={"00": 10}, ideal_counts_sha256="c",
                data={}, packages={}, git_commit=None, prefect_flow_run_id=None,
                mlflow_run_id=None, created="t"),
    RunReport(kind="promotion", experiment="e", version="1.0.0", family="vqe",
              objective="energy_error", direction="minimise", backend="aer", metrics={},
              parameters={}, gates=(GATE,), mlflow_run_id=None, prefect_flow_run_id=None,
              manifest=None),
]


@pytest.mark.parametrize("model", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(model) -> None:  # noqa: ANN001
    assert type(model).model_validate_json(model.model_dump_json()) == model


def test_contracts_forbid_unknown_fields() -> None:
    data = GATE.model_dump()
    data["extra"] = 1
    with pytest.raises(ValueError, match="extra"):
        GateResult.model_validate(data)


def test_transience_by_class() -> None:
    assert is_transient(TransportError("x")) and is_transient(BackendRejectedError("x"))
    assert not is_transient(SubmissionError("x")) and not is_transient(DataError("x"))
    assert not is_transient(ValueError("x"))
    assert DataError("x", field="dataset.path").exit_code == 2
