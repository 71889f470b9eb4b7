"""Shared fixtures for the pytest-benchmark suite (``make bench``).

The suite is skipped by the default ``--benchmark-skip`` in pyproject.toml; run it with
``--benchmark-enable --benchmark-only`` (see docs/benchmarks.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

# Same quiet, offline defaults as the Makefile, for runs that call pytest directly.
# They must be in place before prefect/mlflow are first imported (the test modules import them).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

import pytest  # noqa: E402

from qhybrid.core import ExperimentSpec, Settings, load_spec  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SWEEP_INSTANCE = PROJECT_ROOT / "data" / "maxcut_3reg_10.json"
PROMOTION_SPEC = PROJECT_ROOT / "specs" / "qaoa-maxcut.yaml"


@pytest.fixture(scope="session")
def project_root() -> Path:
    """The qhybrid checkout (holds dvc.lock and data/)."""
    if not SWEEP_INSTANCE.exists():
        pytest.fail(f"{SWEEP_INSTANCE} is missing; run `dvc repro` (or `make data`) first")
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def promotion_spec(project_root: Path) -> ExperimentSpec:
    """The bundled promotion spec (specs/qaoa-maxcut.yaml)."""
    return load_spec(PROMOTION_SPEC)


@pytest.fixture(scope="session")
def tmp_settings(project_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings that read the project's data but write MLflow, records and the execution state
    store into a tmp folder."""
    tmp = tmp_path_factory.mktemp("qhybrid-records")
    return Settings(
        project_root=project_root,
        mlflow_tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
        mlflow_artifact_root=tmp / "artifacts",
        promotion_log=tmp / "log.jsonl",
        manifests_dir=tmp / "manifests",
        state_url=f"sqlite:///{tmp / 'state.db'}",
    )


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A throwaway Prefect server and database for the flows (started once per session).

    Requested only by benchmarks that run a flow or Prefect tasks, so the sweep never starts a
    server.
    """
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
