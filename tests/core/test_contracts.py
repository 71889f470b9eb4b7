"""Every wire contract round-trips through JSON; errors know their class."""

from __future__ import annotations

import pytest

from qhybrid.core import (
    BackendRejectedError,
    BaselineResult,
    CircuitRecord,
    CriterionResult,
    DataError,
    ErrorRecord,
    ErrorReport,
    ExperimentsReport,
    GateResult,
    LeaseRecord,
    LeaseRelease,
    LeasesReport,
    ModelVersionRecord,
    PostProcessingError,
    PromotionDecision,
    PromotionLogRecord,
    QhybridError,
    RegisteredExperiment,
    ReplayMismatchError,
    ReplayReport,
    RunCancelledError,
    RunManifest,
    RunOptions,
    RunRecord,
    RunReport,
    ShowReport,
    SubmissionError,
    SweepReport,
    TrackingError,
    TransportError,
    TrialResult,
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
                parameters=(0.1,), parameter_names=("theta[0]",),
                seeds={"transpiler": 1, "simulator": 2, "optimiser": 3},
                shots=10, backends={}, circuits=(CircuitRecord(role="final", sha256="s",
                num_qubits=2, depth=3),), ideal_counts={"00": 10}, ideal_counts_sha256="c",
                data={}, packages={}, git_commit=None, prefect_flow_run_id=None,
                mlflow_run_id=None, created="t"),
    RunReport(kind="promotion", experiment="e", version="1.0.0", family="vqe",
              objective="energy_error", direction="minimise", backend="aer", metrics={},
              parameters={}, gates=(GATE,), mlflow_run_id=None, prefect_flow_run_id=None,
              manifest=None),
    TrialResult(backend="aer", parameters=(0.1, 0.2), counts={"01": 3}, metrics={"x": 1.0},
                history=(3.0, 2.0), seeds={"simulator": 1}),
    RunOptions(backend="aer-noisy:fake_manila", allow_unpinned_data=True),
    ErrorReport(error=ErrorRecord.model_validate(ReplayMismatchError(
        "m", field="MANIFEST", detail={"identical": False}).to_dict())),
    ReplayReport(manifest="m.json", identical=False, circuit_identical=True,
                 recorded_sha256="a", replayed_sha256="b", differing_outcomes=2),
    LeasesReport(released=(LeaseRelease(kind="job", provider_id="j", backend="aer",
                                        released=True, detail="ok"),),
                 open=(LeaseRecord(id=1, flow_run_id="f", backend="aer", kind="session",
                                   provider_id="s", status="open"),)),
    ShowReport(version=ModelVersionRecord(name="e", version="1", run_id="r",
                                          aliases=("champion",)),
               run=RunRecord(run_id="r", name="n", status="FINISHED", start_time=1,
                             metrics={"m": 1.0}), gates=()),
    SweepReport(experiment="e", version="1.0.0", family="qaoa-maxcut", backend="aer",
                parameters=("gamma[0]", "beta[0]"), observables=("expected_cut",), points=1600,
                chunks=2, chunk_size=1600, chunk_size_reason="chosen", canary_points=64,
                exact=True, seconds=1.5, output="s.parquet", columns=("point",),
                mlflow_run_id="r"),
    ExperimentsReport(experiments=(RegisteredExperiment(
        name="e", versions=(ModelVersionRecord(name="e", version="1", run_id=None),)),)),
]


@pytest.mark.parametrize("model", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(model) -> None:
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



def test_exit_codes_are_decided_at_the_command_line() -> None:
    from qhybrid_entrypoints.exits import EXIT_CODES, exit_code

    expected = {DataError("x"): 2, TransportError("x"): 4, SubmissionError("x"): 4,
                PostProcessingError("x"): 5, TrackingError("x"): 6, ReplayMismatchError("x"): 7,
                RunCancelledError("x"): 8, QhybridError("x"): 1}
    assert {type(e).__name__: exit_code(e) for e in expected} == {
        type(e).__name__: code for e, code in expected.items()}
    assert all(not hasattr(cls, "exit_code") for cls in EXIT_CODES)  # not the kernel's business
