"""The CLI as users run it: exit codes, one JSON document on stdout, nothing written on bad
input."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from backends import StateStore
from qhybrid.core import YOUNG_COLLECTION_THRESHOLD, Settings
from qhybrid_entrypoints.cli import app
from tests.conftest import record_env

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(qhybrid_env: dict[str, str]) -> dict[str, str]:
    """The test's QHYBRID_* variables (records under tmp_path), for subprocesses too."""
    return qhybrid_env


def _spec(tmp_path: Path, name: str = "vqe-h2.yaml", **patch: object) -> Path:
    data = yaml.safe_load((REPO / "specs" / name).read_text())
    for dotted, value in patch.items():
        node = data
        *head, last = dotted.split("__")
        for key in head:
            node = node[key]
        node[last] = value
    path = tmp_path / f"spec-{len(list(tmp_path.glob('spec-*')))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("patch", "args", "field"),
    [
        ({"shots": -3}, [], "shots"),
        ({"family": {"kind": "nope"}}, [], "family"),
        ({"parameters": [0.1, 0.2]}, [], "parameters"),
        ({"gates__hardware__backend": "ibm:fake_atlantis"}, [], "gates.hardware.backend"),
        ({}, ["--backend", "aer-noisy:ibm_torino"], "--backend"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(env, tmp_path, patch, args, field) -> None:
    command = "run" if args else "promote"
    result = CliRunner().invoke(app, [command, str(_spec(tmp_path, **patch)), "--json", *args])
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert error["field"].startswith(field)
    assert not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "promotion-log.jsonl").exists()


@pytest.mark.parametrize("url", ["not a url", "nosuchdb://x/y"])
def test_a_bad_state_store_url_exits_2_naming_it(env, tmp_path, monkeypatch, url: str) -> None:
    monkeypatch.setenv("QHYBRID_STATE_URL", url)
    result = CliRunner().invoke(app, ["promote", str(REPO / "specs" / "vqe-h2.yaml"), "--json"])
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["error"]["field"] == "QHYBRID_STATE_URL"
    assert not (tmp_path / "mlflow.db").exists()


def test_malformed_yaml_and_tampered_data(env, tmp_path, project_copy, monkeypatch) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [oops\n")
    result = CliRunner().invoke(app, ["promote", str(bad)])
    assert result.exit_code == 2 and "malformed YAML" in result.stderr

    monkeypatch.setenv("QHYBRID_PROJECT_ROOT", str(project_copy))
    data = project_copy / "data" / "h2_sto3g_0735.json"
    data.write_text(data.read_text().replace("0.39", "0.38"))
    result = CliRunner().invoke(app, ["promote", str(REPO / "specs" / "vqe-h2.yaml"), "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["field"] == "dataset.path"
    assert "--allow-unpinned-data" in result.stderr
    assert not (tmp_path / "mlflow.db").exists()


def _cli(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env, "PREFECT_HOME": str(tmp_path / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "MLFLOW_DISABLE_TELEMETRY": "true",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    full.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", "qhybrid_entrypoints.cli", *args], env=full,
                          text=True, capture_output=True, timeout=600, cwd=REPO)


def test_run_needs_no_promotion_policies_and_promote_names_the_missing_one(env, tmp_path) -> None:
    data = yaml.safe_load((REPO / "specs" / "vqe-h2.yaml").read_text())
    del data["gates"]["statistical"], data["gates"]["baseline"]
    spec = tmp_path / "run-only.yaml"
    spec.write_text(yaml.safe_dump(data))
    ran = _cli(["run", str(spec), "--json"], env, tmp_path)
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["kind"] == "run" and report["gates"] == []
    runs = _mlflow_runs(env)
    refused = _cli(["promote", str(spec), "--json"], env, tmp_path)
    assert refused.returncode == 2, refused.stderr
    error = json.loads(refused.stdout)["error"]
    assert error["field"] == "gates.statistical", error
    assert "qhybrid run" in error["message"]
    assert not Path(env["QHYBRID_PROMOTION_LOG"]).exists()
    assert _mlflow_runs(env) == runs  # refused before a flow or an MLflow run started


def _mlflow_runs(env: dict[str, str]) -> list[str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=env["QHYBRID_MLFLOW_TRACKING_URI"])
    experiments = [e.experiment_id for e in client.search_experiments()]
    return sorted(r.info.run_id for r in client.search_runs(experiments))


@pytest.mark.slow
def test_promote_replay_show_and_refuse(env, tmp_path) -> None:
    done = _cli(["promote", "specs/vqe-h2.yaml", "--json"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # exactly one JSON document on stdout
    assert report["decision"]["promote"] and report["registered_version"] == "1"
    assert {g["gate"] for g in report["gates"]} == {"ideal", "statistical", "hardware", "baseline"}
    # The Prefect UI's store holds every task run as final, and one artifact per gate, the
    # decision and the execution table.
    with sqlite3.connect(tmp_path / "prefect" / "prefect.db") as db:
        flow_run = report["prefect_flow_run_id"]
        states = db.execute("select name, state_type from task_run where flow_run_id = ?",
                            (flow_run,)).fetchall()
        artifacts = db.execute("select count(*) from artifact a join task_run t "
                               "on a.task_run_id = t.id where t.flow_run_id = ?",
                               (flow_run,)).fetchone()[0]
    assert {state for _name, state in states} == {"COMPLETED"}
    steps = sorted(name.rsplit("-", 1)[0] for name, _state in states
                   if not name.startswith("submit-job"))
    assert steps == sorted(["open-records", "ideal-gate", "statistical-gate", "hardware-gate",
                            "baseline-gate", "decide-promotion", "record-evidence",
                            "apply-promotion", "finish-run"])
    # No task run per provider submission: every backend here is a local engine without a
    # tag concurrency limit, and nothing failed, so no submission was handed to a retried
    # submit-job task run (tests/flows/test_prefect_records.py has those).
    execution = report["execution"]
    assert execution["distinct_jobs"] == execution["provider_submissions"] > 0
    assert len(states) == 9, states
    # The UI's dependency arrows: every step from open-records, the four gates into the
    # decision (their verdicts), the decision into what follows it. The services, and trials
    # and step lists after the decision, are passed as data (quote()d, so Prefect does not
    # walk every field of the services and every entry of a trial's counts).
    with sqlite3.connect(tmp_path / "prefect" / "prefect.db") as db:
        rows = db.execute("select id, name, task_inputs from task_run where flow_run_id = ? "
                          "and name not like 'submit-job%'", (flow_run,)).fetchall()
    step_of = {str(id_): name.rsplit("-", 1)[0] for id_, name, _inputs in rows}
    arrows = {step_of[str(id_)]: {parameter: sorted(step_of.get(str(i["id"]), "submit-job")
                                                    for i in upstream)
                                  for parameter, upstream in json.loads(inputs).items()}
              for id_, _name, inputs in rows}
    assert all("open-records" in arrows[step]["run"] for step in arrows if step != "open-records")
    assert {"ideal-gate", "statistical-gate", "hardware-gate", "baseline-gate"} <= set(
        arrows["decide-promotion"]["gates"])
    assert "decide-promotion" in arrows["record-evidence"]["decision"]
    assert arrows["record-evidence"]["steps"] == arrows["finish-run"]["trial"] == []
    assert all(arrows[step]["services"] == [] for step in arrows)
    assert artifacts == 6

    replayed = _cli(["replay", report["manifest"], "--json"], env, tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["identical"] is True
    # The hardware gate ran on ibm:fake_manila: recorded, but not executed again.
    noisy = json.loads(replayed.stdout)["noisy"]
    assert (noisy["status"], noisy["backend"]) == ("not-applicable", "ibm:fake_manila"), noisy

    shown = _cli(["show", "vqe-h2@champion", "--json"], env, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["run"]["run_id"] == report["mlflow_run_id"]

    impossible = _spec(tmp_path, gates__statistical__threshold=1e-30)
    refused = _cli(["promote", str(impossible), "--json"], env, tmp_path)
    assert refused.returncode == 3, refused.stderr
    assert not json.loads(refused.stdout)["decision"]["promote"]
    listed = json.loads(_cli(["experiments", "--json"], env, tmp_path).stdout)
    assert [v["version"] for v in listed["experiments"][0]["versions"]] == ["1"]
    log = [json.loads(line) for line in Path(env["QHYBRID_PROMOTION_LOG"]).read_text().splitlines()]
    assert [entry["promote"] for entry in log] == [True, False]


@pytest.fixture(scope="module")
def recorded_manifest(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run's manifest, recorded once through the use cases without Prefect."""
    import qhybrid_usecases as usecases
    from qhybrid.core import RunOptions, Settings, load_spec

    with pytest.MonkeyPatch.context() as patch:
        for key, value in record_env(tmp_path_factory.mktemp("recorded")).items():
            patch.setenv(key, value)
        services = usecases.Services.open(Settings())
        run = usecases.open_run(load_spec(repo / "specs" / "vqe-h2.yaml"), RunOptions(),
                                services, kind="run", flow_run_id=None)
        outcome = usecases.run_on_backend(run, services)
        assert outcome.trial is not None
        recorded = usecases.record_evidence(run, services, outcome.trial, [outcome])
        usecases.finish_run(run, services, recorded, outcome.trial, [outcome])
    return Path(recorded.manifest)


@pytest.fixture
def manifest(recorded_manifest: Path, tmp_path: Path) -> Path:
    """This test's copy of the recorded manifest, free to edit."""
    copy = tmp_path / "manifests" / recorded_manifest.name
    copy.parent.mkdir()
    shutil.copy(recorded_manifest, copy)
    return copy


def test_replay_reproduces_a_recorded_run(manifest: Path) -> None:
    result = CliRunner().invoke(app, ["replay", str(manifest), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["identical"] and report["circuit_identical"]
    assert report["replayed_sha256"] == report["recorded_sha256"]


@pytest.mark.parametrize("tamper", ["counts", "circuit"])
def test_replay_detects_a_changed_record(manifest: Path, tamper: str) -> None:
    data = json.loads(manifest.read_text())
    if tamper == "counts":  # one shot moved from the commonest outcome to another, and the
        counts = data["ideal_counts"]  # counts' hash recomputed: the manifest is consistent
        top, other = sorted(counts, key=counts.get, reverse=True)[:2]
        counts[top] -= 1
        counts[other] += 1
        data["ideal_counts_sha256"] = _sha256(json.dumps(counts, sort_keys=True,
                                                         separators=(",", ":")))
    else:
        final = next(c for c in data["circuits"] if c["role"] == "final")
        final["sha256"] = "0" * 64
    manifest.write_text(json.dumps(data))
    result = CliRunner().invoke(app, ["replay", str(manifest), "--json"])
    assert result.exit_code == 7, result.output
    error = json.loads(result.stdout)["error"]
    assert error["error"] == "ReplayMismatchError" and error["field"] == "MANIFEST"
    detail = error["detail"]
    if tamper == "counts":
        assert detail["identical"] is False and detail["circuit_identical"] is True
        assert detail["differing_outcomes"] == 2
    else:
        assert detail["identical"] is True and detail["circuit_identical"] is False


def test_replay_of_parameters_too_large_to_write_is_a_mismatch(manifest: Path) -> None:
    data = json.loads(manifest.read_text())
    data["parameters"] = [1e308] * len(data["parameters"])  # finite, but angles overflow
    manifest.write_text(json.dumps(data))
    result = CliRunner().invoke(app, ["replay", str(manifest), "--json"])
    assert result.exit_code == 7, result.output
    assert json.loads(result.stdout)["error"]["detail"]["circuit_identical"] is False


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("forgery", ["counts-hash", "counts", "spec", "spec-hash", "circuit",
                                     "noise-hash", "noise"])
def test_replay_refuses_a_manifest_that_does_not_match_its_own_hashes(
        manifest: Path, forgery: str) -> None:
    data = json.loads(manifest.read_text())
    if forgery == "counts-hash":  # the hash of other counts put in place of the real one
        data["ideal_counts_sha256"] = _sha256(json.dumps({"00": data["shots"]}))
    elif forgery == "counts":  # counts rewritten, their hash left
        counts = data["ideal_counts"]
        top = max(counts, key=counts.get)
        data["ideal_counts"] = {top: data["shots"]}
    elif forgery == "spec":  # the recorded spec changed, its hash left
        data["spec"]["shots"] = data["spec"]["shots"] + 1
    elif forgery == "spec-hash":
        data["spec_sha256"] = _sha256("another spec")
    elif forgery == "noise-hash":  # a noise section recorded as the spec's, under a wrong hash
        from qhybrid.core import spec_from_mapping

        data["spec"]["gates"]["hardware"] = {
            "backend": "aer", "noise": {"readout": {"p1_given_0": 0.03, "p0_given_1": 0.08}}}
        spec = spec_from_mapping(data["spec"])
        data["spec"], data["spec_sha256"] = spec.model_dump(mode="json"), spec.sha256()
        data["noise"] = data["spec"]["gates"]["hardware"]["noise"]
        data["noise_sha256"] = _sha256("other noise")
    elif forgery == "noise":  # a noise section the spec does not have
        data["noise"] = {"readout": {"p1_given_0": 0.0, "p0_given_1": 0.0}}
    else:  # the final circuit's file beside the manifest is not the circuit recorded
        final = next(c for c in data["circuits"] if c["role"] == "final")
        (manifest.parent / final["qasm3_path"]).parent.mkdir(parents=True, exist_ok=True)
        (manifest.parent / final["qasm3_path"]).write_text("OPENQASM 3.0;\n")
    manifest.write_text(json.dumps(data))
    result = CliRunner().invoke(app, ["replay", str(manifest), "--json"])
    assert result.exit_code == 7, result.output
    error = json.loads(result.stdout)["error"]
    assert error["error"] == "ReplayMismatchError" and error["field"] == "MANIFEST"
    [problem] = error["detail"]["integrity"]
    wanted = {"counts-hash": "ideal_counts_sha256", "counts": "ideal_counts_sha256",
              "spec": "spec_sha256", "spec-hash": "spec_sha256",
              "circuit": "circuits.final.sha256", "noise-hash": "noise_sha256",
              "noise": "noise"}[forgery]
    assert problem.startswith(f"{wanted}: "), problem
    assert "identical" not in error["detail"]  # refused before anything ran


def test_replay_of_a_missing_manifest_is_invalid_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["replay", str(tmp_path / "absent.json"), "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["field"] == "MANIFEST"


def test_an_unusable_tracking_store_exits_6(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QHYBRID_MLFLOW_TRACKING_URI", "sqlite:////dev/null/nowhere/mlflow.db")
    for args in (["experiments", "--json"], ["show", "vqe-h2@champion", "--json"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 6, result.output
        assert json.loads(result.stdout)["error"]["error"] == "TrackingError"


def test_a_backend_failure_exits_4(prefect_server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QHYBRID_FAULTS", "execution=1,seed=3")
    result = CliRunner().invoke(app, ["run", str(REPO / "specs" / "vqe-h2.yaml"), "--json"])
    assert result.exit_code == 4, result.output
    error = json.loads(result.stdout)["error"]
    assert error["error"] == "ExecutionError" and error["transient"] is False


def test_a_spent_qpu_budget_exits_4_naming_it_and_sends_nothing(
        prefect_server, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("QHYBRID_QPU_BUDGET_SECONDS", "1e-9")
    result = CliRunner().invoke(app, ["run", str(REPO / "specs" / "vqe-h2.yaml"), "--backend",
                                      "ibm:fake_manila", "--json"])
    assert result.exit_code == 4, result.output
    error = json.loads(result.stdout)["error"]
    assert (error["error"], error["layer"], error["field"], error["transient"]) == (
        "QpuBudgetError", "budget", "QHYBRID_QPU_BUDGET_SECONDS", False)
    assert "nothing was sent" in error["message"]
    assert StateStore(settings.state_url).count_local_jobs() == 0


def test_results_that_cannot_be_analysed_exit_5(prefect_server,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from backends import AerBackend, SubmissionResult

    real_run = AerBackend.run

    def no_shots(backend: AerBackend, submission):
        result = real_run(backend, submission)
        if submission.kind == "sample":
            return SubmissionResult(counts=[[{} for _ in rows] for rows in result.counts],
                                    metadata=result.metadata)
        return result

    monkeypatch.setattr(AerBackend, "run", no_shots)
    result = CliRunner().invoke(app, ["run", str(REPO / "specs" / "vqe-h2.yaml"), "--json"])
    assert result.exit_code == 5, result.output
    assert json.loads(result.stdout)["error"]["error"] == "PostProcessingError"


def test_a_cancelled_run_exits_8(prefect_server, monkeypatch: pytest.MonkeyPatch,
                                 repo: Path) -> None:
    import threading
    from uuid import UUID

    from prefect import get_client
    from prefect.states import Cancelling

    from backends import AerBackend, StateStore

    monkeypatch.setenv("QHYBRID_CANCEL_POLL_SECONDS", "0")
    store = StateStore(os.environ["QHYBRID_STATE_URL"])
    reached, release = threading.Event(), threading.Event()
    real_run = AerBackend.run

    def held(backend: AerBackend, submission):
        if not reached.is_set():
            reached.set()
            release.wait(120)
        return real_run(backend, submission)

    def cancel() -> None:  # what a user does from the Prefect UI while the run works
        if reached.wait(300):
            with store.engine.connect() as conn:
                [flow_run_id] = {row[0] for row in conn.exec_driver_sql(
                    "select flow_run_id from submissions")}
            with get_client(sync_client=True) as client:
                client.set_flow_run_state(UUID(flow_run_id), Cancelling(), force=True)
        release.set()

    monkeypatch.setattr(AerBackend, "run", held)
    canceller = threading.Thread(target=cancel)
    canceller.start()
    result = CliRunner().invoke(app, ["run", str(repo / "specs" / "vqe-h2.yaml"), "--json"])
    canceller.join(60)
    assert result.exit_code == 8, result.output
    assert json.loads(result.stdout)["error"]["error"] == "RunCancelledError"


def test_circuit_wider_than_device_is_refused_before_running(env, tmp_path) -> None:
    spec = _spec(tmp_path, "qaoa-maxcut.yaml", gates__hardware__backend="ibm:fake_lima")
    result = CliRunner().invoke(app, ["promote", str(spec), "--json"])
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["field"] == "gates.hardware.backend" and "5 qubits" in error["message"]
    assert not (tmp_path / "mlflow.db").exists()


def test_leases_lists_and_releases_what_a_killed_run_left_open(env, tmp_path) -> None:
    from backends import StateStore

    store = StateStore(env["QHYBRID_STATE_URL"])
    # As a process killed outright leaves them: a session and a job of one flow run, still open.
    store.open_lease("run-1", "ibm:fake_manila", "session", "local-session-abc")
    store.open_lease("run-1", "aer", "job", "local-0123")
    store.open_lease("run-2", "aer", "job", "local-4567")
    listed = CliRunner().invoke(app, ["leases", "--json"])
    assert listed.exit_code == 0, listed.output
    assert len(json.loads(listed.stdout)["open"]) == 3
    released = CliRunner().invoke(app, ["leases", "--release", "run-1", "--json"])
    assert released.exit_code == 0, released.output
    document = json.loads(released.stdout)
    assert [(o["kind"], o["released"]) for o in document["released"]] == [
        ("session", True), ("job", True)]
    assert [lease["flow_run_id"] for lease in document["open"]] == ["run-2"]
    assert [lease.status for lease in store.leases("run-1")] == ["cancelled", "cancelled"]


@pytest.mark.slow
def test_a_run_killed_between_submission_and_result_reattaches_when_run_again(
        env, tmp_path) -> None:
    import signal

    from sqlalchemy import func, select

    from backends import StateStore
    from backends._store import LOCAL_JOBS

    full = {**os.environ, **env, "PREFECT_HOME": str(tmp_path / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "MLFLOW_DISABLE_TELEMETRY": "true",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
            "QHYBRID_FAULTS": "crash=3"}
    full.pop("PREFECT_API_URL", None)
    # Its own process group, so that the local Prefect server it leaves behind can be stopped;
    # output to a file, since that orphan would hold a pipe open.
    log = tmp_path / "crashed.log"
    with log.open("w") as sink:
        crashed = subprocess.Popen([sys.executable, "-m", "qhybrid_entrypoints.cli", "run",
                                    "specs/vqe-h2.yaml"],
                                   env=full, cwd=REPO, start_new_session=True,
                                   stdout=sink, stderr=subprocess.STDOUT)
        try:
            crashed.wait(timeout=600)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(crashed.pid, signal.SIGKILL)
    assert crashed.returncode == -signal.SIGKILL, log.read_text()
    store = StateStore(env["QHYBRID_STATE_URL"])
    assert store.count_local_jobs() == 3 and store.ledger_counts() == {"done": 2, "submitted": 1}

    rerun = _cli(["run", "specs/vqe-h2.yaml", "--json"], env, tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    execution = json.loads(rerun.stdout)["execution"]
    assert execution["reattachments"] == 3  # the two finished jobs and the one killed mid-wait
    assert execution["provider_submissions"] == execution["distinct_jobs"] - 3
    with store.engine.connect() as conn:
        per_key = conn.execute(
            select(LOCAL_JOBS.c.tag, func.count()).group_by(LOCAL_JOBS.c.tag)).all()
    assert max(n for _tag, n in per_key) == 1  # no work was paid for twice
    assert store.count_local_jobs() == execution["distinct_jobs"]


SENTINEL_PASSWORD = "pw-sentinel-7c1d"


@pytest.mark.parametrize(("variable", "url", "args", "code"), [
    ("QHYBRID_STATE_URL", f"postgresql+psycopg://u:{SENTINEL_PASSWORD}@127.0.0.1:9/db",
     ["leases"], 6),
    ("QHYBRID_STATE_URL", f"mysql://u:{SENTINEL_PASSWORD}@127.0.0.1/db", ["leases"], 2),
    ("QHYBRID_MLFLOW_TRACKING_URI", f"postgresql+psycopg://u:{SENTINEL_PASSWORD}@127.0.0.1:9/db",
     ["experiments"], 6),
    ("QHYBRID_MLFLOW_TRACKING_URI", f"http://u:{SENTINEL_PASSWORD}@127.0.0.1:9",
     ["show", "x@champion"], 6),
])
def test_a_password_in_a_store_url_is_never_printed(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                    url: str, args: list[str], code: int) -> None:
    monkeypatch.setenv(variable, url)
    for as_json in ([], ["--json"]):
        result = CliRunner().invoke(app, [*args, *as_json])
        assert result.exit_code == code, result.output
        assert SENTINEL_PASSWORD not in result.stdout + result.stderr
        assert "***" in result.stdout + result.stderr  # the URL is shown, masked


@pytest.mark.parametrize(("url", "words"), [
    ("mysql://u@127.0.0.1/db", "MySQLdb"), ("mssql://u@127.0.0.1/db", "pyodbc"),
    ("sqlite:////dev/null/state.db", "Not a directory"),
])
def test_an_unusable_state_store_is_refused_before_anything_runs(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, words: str) -> None:
    monkeypatch.setenv("QHYBRID_STATE_URL", url)
    result = CliRunner().invoke(app, ["run", str(REPO / "specs" / "vqe-h2.yaml"), "--json"])
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert error["field"] == "QHYBRID_STATE_URL" and words in error["message"]
    assert not (tmp_path / "mlflow.db").exists()


def test_a_misspelt_setting_is_refused_with_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QHYBRID_SUBMISION_RETRIES", "5")
    result = CliRunner().invoke(app, ["experiments", "--json"])
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["field"] == "QHYBRID_SUBMISION_RETRIES"
    assert "QHYBRID_SUBMISSION_RETRIES" in error["message"]


@pytest.mark.parametrize("backend", ["", "ibm:fake_provider_for_backend",
                                     "aer-noisy:fake_provider_for_backend", "aer:"])
def test_backend_names_that_are_no_device_are_refused(tmp_path: Path, backend: str) -> None:
    result = CliRunner().invoke(app, ["run", str(REPO / "specs" / "vqe-h2.yaml"), "--backend",
                                      backend, "--json"])
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["error"]["field"] == "--backend"
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "state.db").exists()


def test_flows_the_cli_runs_send_no_heartbeats_unless_asked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import get_current_settings

    from qhybrid_entrypoints._flow_command import no_heartbeats

    for name in ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY"):
        monkeypatch.delenv(name, raising=False)
    with no_heartbeats():  # Prefect would wait for its heartbeat thread at each flow's end
        assert get_current_settings().flows.heartbeat_frequency is None
    monkeypatch.setenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "60")  # asked for: left as set
    with no_heartbeats():
        assert get_current_settings().flows.heartbeat_frequency is not None


def test_a_command_raises_the_young_collection_threshold_before_it_loads_anything() -> None:
    probe = ("import gc, sys\n"
             "from qhybrid_entrypoints.cli import main\n"
             "before = gc.get_threshold()[0]\n"
             "sys.argv = ['qhybrid', '--help']\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(before, gc.get_threshold()[0], file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=False, cwd=Path(__file__).parents[2])
    before, after = map(int, done.stderr.split()[-2:])
    assert before < YOUNG_COLLECTION_THRESHOLD == after


def test_a_stopped_command_exits_even_with_a_thread_no_one_can_join() -> None:
    # What a signal landing inside a library's thread start leaves: a worker thread that the
    # interpreter waits for, forever, at exit.
    code = "\n".join([
        "import threading",
        "from qhybrid_entrypoints import cli",
        "def stopped():",
        "    threading.Thread(target=threading.Event().wait).start()",
        "    raise SystemExit(143)",
        "cli.app = stopped",
        "cli.STOPPED_EXIT_SECONDS = 0.2",
        "cli.main()",
    ])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)  # without the bounded exit, it hangs and fails here
    assert done.returncode == 143, done.stderr
