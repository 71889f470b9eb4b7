"""Shared fixtures: real components on temporary stores, and settings isolated from the
developer's environment."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis.core
import hypothesis.vendor.pretty
import pytest

from qhybrid.core import Settings

# schemathesis's pytest plugin, loaded by itself, blanks every falsifying example Hypothesis
# prints; give Hypothesis its own printer back.
hypothesis.core.RepresentationPrinter = hypothesis.vendor.pretty.RepresentationPrinter  # type: ignore[misc]

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root; its data/ must exist (`make data` / `dvc repro`)."""
    for name in ("maxcut_3reg_10.json", "maxcut_3reg_6.json", "h2_sto3g_0735.json",
                 "ghz_3.qasm", "ghz_3_observables.json"):
        if not (REPO / "data" / name).is_file():
            pytest.fail(f"data/{name} is missing: run `make data` (dvc repro) before the tests")
    return REPO


def record_env(root: Path) -> dict[str, str]:
    """``QHYBRID_*`` variables that read the repo's pinned data and write every record under
    ``root``."""
    return {
        "QHYBRID_PROJECT_ROOT": str(REPO),
        "QHYBRID_MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
        "QHYBRID_MLFLOW_ARTIFACT_ROOT": str(root / "artifacts"),
        "QHYBRID_PROMOTION_LOG": str(root / "promotion-log.jsonl"),
        "QHYBRID_MANIFESTS_DIR": str(root / "manifests"),
        "QHYBRID_STATE_URL": f"sqlite:///{root}/state.db",
    }


@pytest.fixture(autouse=True)
def qhybrid_env(request: pytest.FixtureRequest, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every test starts without the developer's ``QHYBRID_*`` variables (tests marked ``ibm``
    keep the IBM account ones), with its records under its own tmp_path. Flows read their
    settings from this environment."""
    keep = ("QHYBRID_IBM_",) if request.node.get_closest_marker("ibm") else ()
    for key in list(os.environ):
        if key.startswith("QHYBRID_") and not key.startswith(keep or ("\0",)):
            monkeypatch.delenv(key)
    values = record_env(tmp_path)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def settings(qhybrid_env: dict[str, str]) -> Settings:
    """The settings a flow in this test reads."""
    return Settings()


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """Change settings for this test, as a user would: through ``QHYBRID_*`` variables.

    ``configure(faults="transport=1", retry_backoff_seconds=0)`` returns the new settings.
    """

    def apply(**updates: object) -> Settings:
        for key, value in updates.items():
            monkeypatch.setenv(f"QHYBRID_{key.upper()}", str(value))
        return Settings()

    return apply


@pytest.fixture
def project_copy(repo: Path, tmp_path: Path) -> Path:
    """A throwaway project root with the repo's DVC pipeline, its lock and data, safe to tamper
    with."""
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    for name in ("dvc.yaml", "dvc.lock", "params.yaml"):
        shutil.copy(repo / name, root / name)
    for f in [*(repo / "data").glob("*.json"), *(repo / "data").glob("*.qasm")]:
        shutil.copy(f, root / "data" / f.name)
    return root


@pytest.fixture(scope="session")
def prefect_server():
    """A temporary Prefect server for flow tests (started once, ~10 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def runtime_job_tags(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The job tags of every job qiskit-ibm-runtime's ``Executor`` is asked to run, in order.

    The executor-based primitives hand their ``options.environment.job_tags`` to an
    ``Executor``, which sends them to IBM with the job (``to_runtime_options``); in local mode it
    runs the job without them, so they are read here, on their way in. A spy on the foreign
    class that calls through: every job still runs.
    """
    from qiskit_ibm_runtime.executor import Executor

    sent: list[list[str]] = []
    run = Executor.run

    def spy(self: Executor, program: Any, dry_run: bool = False) -> Any:
        sent.append(list(self.options.environment.job_tags))
        return run(self, program, dry_run=dry_run)

    monkeypatch.setattr(Executor, "run", spy)
    return sent
