"""Stops that leave nothing behind: Ctrl-C to the terminal's process group, SIGINT to the
process, SIGTERM and SIGKILL, at each gate of a promotion run by the real CLI.

Each signal is sent when the command's own log says a gate is under way (a hook on what the
process reports, not a sleep). Afterwards: no process left, no lease open, no MLflow run and
no Prefect flow run still running.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
MARKER = "QH_TEST_STOPS"  # not a QHYBRID_ setting: tags every process a test starts
# The gate under way once the previous task run has finished.
GATES = {"ideal": "Task run 'open-records", "statistical": "Task run 'ideal-gate",
         "hardware": "Task run 'statistical-gate"}
EXPECTED_EXIT = {"sigint-group": 130, "sigint-process": 130, "sigterm": 143, "sigkill": -9}


def _environment(qhybrid_env: dict[str, str], tmp_path: Path, token: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("QHYBRID_", "PREFECT_"))}
    return {**env, **qhybrid_env, MARKER: token, "PREFECT_HOME": str(tmp_path / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}


def _ours(token: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get(MARKER) == token:
                found.append(proc)
    return found


def _wait_for(log: Path, marker: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while marker not in log.read_text(errors="replace"):
        assert process.poll() is None, f"ended before {marker!r}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no {marker!r} in 300 s"
        time.sleep(0.02)  # reading the process's own report; Prefect offers no other hook


@pytest.mark.slow
@pytest.mark.parametrize("gate", list(GATES))
@pytest.mark.parametrize("how", list(EXPECTED_EXIT))
def test_a_stop_at_any_gate_leaves_nothing_running(how: str, gate: str, tmp_path: Path,
                                                   qhybrid_env: dict[str, str]) -> None:
    token = uuid.uuid4().hex
    env = _environment(qhybrid_env, tmp_path, token)
    log = tmp_path / "promote.log"
    # -v: Prefect's task-run lines, which say where the promotion is, reach the terminal.
    command = [sys.executable, "-m", "qhybrid_entrypoints.cli", "promote",
               "specs/qaoa-maxcut-small.yaml", "-v"]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=sink,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_for(log, GATES[gate], process)
            if how == "sigint-group":  # Ctrl-C in a terminal
                os.killpg(process.pid, signal.SIGINT)
            else:
                process.send_signal({"sigint-process": signal.SIGINT,
                                     "sigterm": signal.SIGTERM,
                                     "sigkill": signal.SIGKILL}[how])
            code = process.wait(timeout=60)  # "within seconds"; a hang fails here
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    assert code == EXPECTED_EXIT[how], log.read_text()
    if how == "sigkill":
        # The next command finds the run the killed one left and ends it.
        after = subprocess.run([*command[:3], "leases", "--release", "none"], env=env, cwd=REPO,
                               capture_output=True, text=True, timeout=300)
        assert after.returncode == 0, after.stderr
        assert "was killed" in after.stderr
    _assert_nothing_left(token, tmp_path, qhybrid_env)


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "how"), [("dropped_sigterm=3", "sigterm"),
                                            ("dropped_sigint=3", "sigint-process")])
def test_a_signal_prefect_drops_still_stops_the_promotion(
        tmp_path: Path, qhybrid_env: dict[str, str], fault: str, how: str) -> None:
    """SIGTERM or Ctrl-C raised inside a finalizer: the error its handler raises there is
    dropped by Python, so the flow engine never sees it. The command still stops at its next
    submission, exits 143 or 130 and ends its records as for any such signal."""
    token = uuid.uuid4().hex
    env = {**_environment(qhybrid_env, tmp_path, token), "QHYBRID_FAULTS": fault}
    done = subprocess.run([sys.executable, "-m", "qhybrid_entrypoints.cli", "promote",
                           "specs/qaoa-maxcut-small.yaml"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == EXPECTED_EXIT[how], done.stderr
    assert "Exception ignored in" in done.stderr  # the signal's error was dropped, as planned
    _assert_nothing_left(token, tmp_path, qhybrid_env)


def _assert_nothing_left(token: str, tmp_path: Path, qhybrid_env: dict[str, str]) -> None:
    _gone, alive = psutil.wait_procs(_ours(token), timeout=10)
    assert alive == [], [p.cmdline() for p in alive]  # no Prefect server, no flow left behind

    with sqlite3.connect(Path(qhybrid_env["QHYBRID_STATE_URL"].removeprefix("sqlite:///"))) as db:
        assert db.execute("select count(*) from leases where status = 'open'").fetchone() == (0,)
    mlflow_db = Path(qhybrid_env["QHYBRID_MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"))
    with sqlite3.connect(mlflow_db) as db:
        statuses = dict(db.execute("select name, status from runs where name like 'promotion%'"))
        assert statuses == {"promotion:qaoa-maxcut-small@0.1.0": "KILLED"}, statuses
        assert db.execute("select count(*) from runs where status = 'RUNNING'").fetchone() == (0,)
    with sqlite3.connect(tmp_path / "prefect" / "prefect.db") as db:
        states = [row[0] for row in db.execute("select state_type from flow_run")]
    assert states == ["CRASHED"], states


@pytest.mark.slow
def test_two_first_runs_at_once_in_a_fresh_project_both_succeed(
        tmp_path: Path, qhybrid_env: dict[str, str]) -> None:
    token = uuid.uuid4().hex
    env = _environment(qhybrid_env, tmp_path, token)
    command = [sys.executable, "-m", "qhybrid_entrypoints.cli", "promote", "specs/vqe-h2.yaml",
               "--json"]
    first = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    # The second starts once the first is under way: its Prefect folder exists.
    deadline = time.monotonic() + 60
    while not (tmp_path / "prefect").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    second = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=600) for p in (first, second)]
    codes = [p.returncode for p in (first, second)]
    if codes != [0, 0]:  # the whole of each stderr, not pytest's cut of it
        pytest.fail(f"exit codes {codes}\n" + "\n--- second ---\n".join(e for _o, e in outs))
    versions = sorted(json.loads(out)["registered_version"] for out, _err in outs)
    # The same evidence twice: the second names the version that holds it, unless both
    # registered before either could see the other's (then versions 1 and 2).
    assert versions in (["1", "1"], ["1", "2"])
