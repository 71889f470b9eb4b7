"""The system of record on real stores: DVC pins, the promotion log, MLflow on SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qhybrid.core import (
    DataError,
    InvalidInputError,
    PromotionLogRecord,
    RunManifest,
    TrackingError,
)
from registry import (
    Tracker,
    append_decision,
    file_md5,
    pin_inputs,
    read_decisions,
    read_manifest,
    write_manifest,
)

DATA = "data/h2_sto3g_0735.json"


def test_pins_match_dvc_lock(repo: Path) -> None:
    pins = pin_inputs([DATA], repo)
    assert pins[DATA].matches and pins[DATA].stage == "h2-sto3g-0735"


def test_tampered_data_is_refused_unless_allowed(project_copy: Path) -> None:
    target = project_copy / DATA
    target.write_text(target.read_text().replace("-1.05", "-1.06"))
    with pytest.raises(DataError, match=r"dvc\.lock pins") as info:
        pin_inputs([DATA], project_copy)
    assert info.value.field == "dataset.path"
    pins = pin_inputs([DATA], project_copy, allow_unpinned=True)
    assert not pins[DATA].matches and pins[DATA].md5 == file_md5(target)


def test_several_inputs_are_pinned_in_one_read_of_the_pipeline_each_named_by_its_field(
        project_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import registry._dvc as dvc

    reads = []
    real = dvc._locked_outs
    monkeypatch.setattr(dvc, "_locked_outs", lambda root: reads.append(root) or real(root))
    observables = "data/ghz_3_observables.json"
    inputs = {"dataset.path": DATA, "family.observables_path": observables}
    pins = pin_inputs(inputs, project_copy)
    assert pins[DATA].matches and pins[observables].matches
    assert len(reads) == 1
    target = project_copy / observables
    target.write_text(target.read_text().replace("1.0", "2.0"))
    with pytest.raises(DataError, match=r"dvc\.lock pins") as info:
        pin_inputs(inputs, project_copy)
    assert info.value.field == "family.observables_path"


def test_the_pipeline_is_read_again_only_when_its_files_change(
        project_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import registry._dvc as dvc

    reads = []
    real = dvc._read_locked_outs
    monkeypatch.setattr(dvc, "_read_locked_outs", lambda root: reads.append(root) or real(root))
    pin_inputs([DATA], project_copy)
    pin_inputs([DATA], project_copy)  # the flow's check after the command's
    assert len(reads) == 1
    lock = project_copy / "dvc.lock"
    text = lock.read_text()
    locked = file_md5(project_copy / DATA)
    lock.write_text(text.replace(locked, "abcdef0123456789" * 2))  # now it pins another file
    with pytest.raises(DataError, match=r"dvc\.lock pins"):
        pin_inputs([DATA], project_copy)
    assert len(reads) == 2
    lock.write_text(text)
    assert pin_inputs([DATA], project_copy)[DATA].matches
    assert len(reads) == 3


def test_missing_data_and_missing_lock(project_copy: Path) -> None:
    (project_copy / DATA).unlink()
    with pytest.raises(DataError, match="does not exist"):
        pin_inputs([DATA], project_copy)
    (project_copy / "dvc.lock").unlink()
    with pytest.raises(DataError, match=r"dvc\.lock"):
        pin_inputs([DATA], project_copy)


def test_promotion_log_appends_and_reads(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    for promote in (True, False):
        append_decision(log, PromotionLogRecord(
            timestamp="t", experiment="e", version="1.0.0", spec_sha256="h", mlflow_run_id="r",
            promote=promote, registered_version="1" if promote else None, aliases=(),
            reasons=("r",), score=None, champion_score=None))
    records = read_decisions(log)
    assert [r.promote for r in records] == [True, False]
    log.write_text(log.read_text() + "not json\n")
    with pytest.raises(TrackingError, match=":3:"):
        read_decisions(log)


def test_registry_aliases_and_champion_score(tmp_path: Path) -> None:
    tracker = Tracker(f"sqlite:///{tmp_path}/m.db", tmp_path / "artifacts", "t")
    run = tracker.start_run("r", tags={"k": "v"})
    nested = tracker.start_run("gate", tags={}, parent_run_id=run)
    tracker.log_series(nested, "objective", [3.0, 2.0, 1.0])
    assert tracker.champion_score("model") is None
    v1 = tracker.register_version("model", run, "experiment", {"qhybrid.score": "0.5"})
    tracker.set_alias("model", "champion", v1)
    v2 = tracker.register_version("model", run, "experiment", {"qhybrid.score": "0.7"})
    tracker.set_alias("model", "challenger", v2)
    assert tracker.champion_score("model") == 0.5
    [(name, versions)] = tracker.registered()
    assert name == "model" and {v.version: v.aliases for v in versions} == {
        "2": ("challenger",), "1": ("champion",)}
    assert [c.run_id for c in tracker.child_runs(run)] == [nested]
    assert tracker.version_by_alias("model", "nobody") is None


def test_manifest_read_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps({"kind": "run"}))
    with pytest.raises(InvalidInputError, match=r"m\.json"):
        read_manifest(bad)
    with pytest.raises(InvalidInputError) as info:
        read_manifest(tmp_path / "absent.json")
    assert info.value.field == "MANIFEST"


MANIFEST = RunManifest(
    kind="run", experiment="e", version="1.0.0", spec={"a": 1}, spec_sha256="h",
    parameters=(0.1,), parameter_names=("theta[0]",),
    seeds={"transpiler": 1, "simulator": 2, "optimiser": 3}, shots=10,
    backends={}, circuits=(), ideal_counts={"00": 10}, ideal_counts_sha256="c", data={},
    packages={}, git_commit=None, prefect_flow_run_id=None, mlflow_run_id="r", created="t")


def test_manifest_written_is_read_back_whole(tmp_path: Path) -> None:
    manifest = MANIFEST
    path = write_manifest(tmp_path / "deep" / "r.json", manifest)
    assert read_manifest(path) == manifest
    assert not list(path.parent.glob("*.tmp"))  # written atomically: no partial file left


@pytest.mark.parametrize(("patch", "where"), [
    ({"seeds": {"simulator": 2}}, "seeds"),
    ({"parameters": [float("nan")]}, "parameters"),
    ({"parameters": [0.1, 0.2]}, "parameter"),
    ({"shots": 0}, "shots"),
    ({"shots": 10**12}, "shots"),
    ({"data": {"data/x.json": {"stage": "s"}}}, "data"),
    ({"ideal_counts": {"00": -1}}, "ideal_counts"),
])
def test_every_manifest_field_is_validated(tmp_path: Path, patch: dict, where: str) -> None:
    doc = json.loads(MANIFEST.model_dump_json()) | patch
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InvalidInputError) as info:
        read_manifest(path)
    assert info.value.field == "MANIFEST" and where in info.value.message


def test_artifact_uploads_take_turns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A run's plot thread and its main thread log into the same new folders; MLflow's local
    # store checks for a folder, then makes it, and the thread that loses that race fails
    # ("File exists"). Every folder MLflow makes for an upload is made under the one lock.
    import os

    from registry import _tracking

    tracker = Tracker(f"sqlite:///{tmp_path}/m.db", tmp_path / "artifacts", "t")
    run = tracker.start_run("r", tags={})
    (tmp_path / "files" / "circuits").mkdir(parents=True)
    (tmp_path / "files" / "circuits" / "ansatz.qasm").write_text("OPENQASM 3.0;")
    held: list[bool] = []
    make = os.mkdir

    def mkdir(path: str, *args: object, **kwargs: object) -> None:
        held.append(_tracking._ARTIFACTS.locked())
        make(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "mkdir", mkdir)
    tracker.log_artifacts(run, tmp_path / "files", "experiment")
    tracker.log_dict(run, {"a": 1}, "experiment/manifest.json")
    assert len(held) >= 2 and all(held)


def test_log_values_records_a_runs_values_in_one_call(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = Tracker(f"sqlite:///{tmp_path}/m.db", tmp_path / "artifacts", "t")
    run = tracker.start_run("r", tags={})
    calls: list[tuple[int, int, int]] = []
    send = tracker.client.log_batch

    def counted(run_id: str, metrics=(), params=(), tags=(), **kwargs) -> None:
        calls.append((len(params), len(metrics), len(tags)))
        send(run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    monkeypatch.setattr(tracker.client, "log_batch", counted)
    tracker.log_values(run, params={"p": "1", "long": "x" * 7000}, metrics={"m": 2.0},
                       tags={"t": "v"}, series={"objective": [3.0, 2.0, 1.0]})
    # More than one request holds: MLflow cuts it at its limits (100 params, 1000 entities).
    tracker.log_values(run, params={f"q{i}": str(i) for i in range(150)},
                       series={"long": [float(i) for i in range(1200)]})
    assert calls == [(2, 4, 1), (150, 1200, 0)]

    recorded = tracker.client.get_run(run).data
    assert recorded.params["p"] == "1" and len(recorded.params["long"]) == 6000
    assert len([key for key in recorded.params if key.startswith("q")]) == 150
    assert recorded.metrics["m"] == 2.0 and recorded.tags["t"] == "v"
    history = tracker.client.get_metric_history(run, "objective")
    assert [(m.step, m.value) for m in history] == [(0, 3.0), (1, 2.0), (2, 1.0)]
    assert len(tracker.client.get_metric_history(run, "long")) == 1200
