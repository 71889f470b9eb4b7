"""The CLI as users run it: exit codes, one JSON document on stdout, nothing written on bad input."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from qhybrid.cli import app

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "QHYBRID_PROJECT_ROOT": str(REPO),
        "QHYBRID_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "QHYBRID_MLFLOW_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "QHYBRID_PROMOTION_LOG": str(tmp_path / "log.jsonl"),
        "QHYBRID_STATE_URL": f"sqlite:///{tmp_path}/state.db",
        "QHYBRID_MANIFESTS_DIR": str(tmp_path / "manifests"),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


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
def test_bad_input_exits_2_and_writes_nothing(env, tmp_path, patch, args, field) -> None:  # noqa: ANN001
    command = "run" if args else "promote"
    result = CliRunner().invoke(app, [command, str(_spec(tmp_path, **patch)), "--json", *args])
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert error["field"].startswith(field)
    assert not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "log.jsonl").exists()


@pytest.mark.parametrize("url", ["not a url", "nosuchdb://x/y"])
def test_a_bad_state_store_url_exits_2_naming_it(env, tmp_path, monkeypatch, url: str) -> None:  # noqa: ANN001
    monkeypatch.setenv("QHYBRID_STATE_URL", url)
    result = CliRunner().invoke(app, ["promote", str(REPO / "specs" / "vqe-h2.yaml"), "--json"])
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["error"]["field"] == "QHYBRID_STATE_URL"
    assert not (tmp_path / "mlflow.db").exists()


def test_malformed_yaml_and_tampered_data(env, tmp_path, project_copy, monkeypatch) -> None:  # noqa: ANN001
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
    return subprocess.run([sys.executable, "-m", "qhybrid.cli", *args], env=full, text=True,
                          capture_output=True, timeout=600, cwd=REPO)


@pytest.mark.slow
def test_promote_replay_show_and_refuse(env, tmp_path) -> None:  # noqa: ANN001
    done = _cli(["promote", "specs/vqe-h2.yaml", "--json"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # exactly one JSON document on stdout
    assert report["decision"]["promote"] and report["registered_version"] == "1"
    assert {g["gate"] for g in report["gates"]} == {"ideal", "statistical", "hardware", "baseline"}
    # The Prefect UI's store holds every task run as final, and one artifact per gate + decision.
    with sqlite3.connect(tmp_path / "prefect" / "prefect.db") as db:
        flow_run = report["prefect_flow_run_id"]
        states = db.execute("select name, state_type from task_run where flow_run_id = ?",
                            (flow_run,)).fetchall()
        artifacts = db.execute("select count(*) from artifact a join task_run t on a.task_run_id = t.id "
                               "where t.flow_run_id = ?", (flow_run,)).fetchone()[0]
    assert {state for _name, state in states} == {"COMPLETED"}
    steps = sorted(name.rsplit("-", 1)[0] for name, _state in states if not name.startswith("submit-job"))
    assert steps == sorted(["open-records", "ideal-gate", "statistical-gate", "hardware-gate",
                            "baseline-gate", "decide-promotion", "close-records"])
    # One task run per provider submission (no faults: no retries, nothing re-attached), each
    # tagged with its backend.
    execution = report["execution"]
    assert len(states) - 7 == execution["distinct_jobs"] == execution["provider_submissions"]
    with sqlite3.connect(tmp_path / "prefect" / "prefect.db") as db:
        tags = {row[0] for row in db.execute(
            "select tags from task_run where flow_run_id = ? and name like 'submit-job%'", (flow_run,))}
    assert tags == {'["backend:aer"]', '["backend:ibm:fake_manila"]'}, tags
    assert artifacts == 5

    replayed = _cli(["replay", report["manifest"], "--json"], env, tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["identical"] is True

    shown = _cli(["show", "vqe-h2@champion", "--json"], env, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["run"]["run_id"] == report["mlflow_run_id"]

    impossible = _spec(tmp_path, gates__statistical__threshold=1e-30)
    refused = _cli(["promote", str(impossible), "--json"], env, tmp_path)
    assert refused.returncode == 3, refused.stderr
    assert not json.loads(refused.stdout)["decision"]["promote"]
    listed = json.loads(_cli(["experiments", "--json"], env, tmp_path).stdout)
    assert [v["version"] for v in listed[0]["versions"]] == ["1"]
    log = [json.loads(line) for line in Path(env["QHYBRID_PROMOTION_LOG"]).read_text().splitlines()]
    assert [entry["promote"] for entry in log] == [True, False]


def test_replay_detects_a_changed_record(env, tmp_path) -> None:  # noqa: ANN001
    result = CliRunner().invoke(app, ["replay", str(tmp_path / "absent.json")])
    assert result.exit_code == 2


def test_circuit_wider_than_device_is_refused_before_running(env, tmp_path) -> None:  # noqa: ANN001
    spec = _spec(tmp_path, "qaoa-maxcut.yaml", gates__hardware__backend="ibm:fake_lima")
    result = CliRunner().invoke(app, ["promote", str(spec), "--json"])
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["field"] == "gates.hardware.backend" and "5 qubits" in error["message"]
    assert not (tmp_path / "mlflow.db").exists()


def test_leases_lists_and_releases_what_a_killed_run_left_open(env, tmp_path) -> None:  # noqa: ANN001
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
    assert len(document["released"]) == 2 and all("cancelled" in line for line in document["released"])
    assert [lease["flow_run_id"] for lease in document["open"]] == ["run-2"]
    assert [lease.status for lease in store.leases("run-1")] == ["cancelled", "cancelled"]


@pytest.mark.slow
def test_a_run_killed_between_submission_and_result_reattaches_when_run_again(env, tmp_path) -> None:  # noqa: ANN001
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
        crashed = subprocess.Popen([sys.executable, "-m", "qhybrid.cli", "run", "specs/vqe-h2.yaml"],
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
        per_key = conn.execute(select(LOCAL_JOBS.c.tag, func.count()).group_by(LOCAL_JOBS.c.tag)).all()
    assert max(n for _tag, n in per_key) == 1  # no work was paid for twice
    assert store.count_local_jobs() == execution["distinct_jobs"]
