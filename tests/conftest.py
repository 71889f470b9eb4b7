"""Shared fixtures: real components on temporary stores."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qhybrid.core import Settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root; its data/ must exist (`make data` / `dvc repro`)."""
    for name in ("maxcut_3reg_10.json", "maxcut_3reg_6.json", "h2_sto3g_0735.json"):
        if not (REPO / "data" / name).is_file():
            pytest.fail(f"data/{name} is missing: run `make data` (dvc repro) before the tests")
    return REPO


@pytest.fixture
def settings(repo: Path, tmp_path: Path) -> Settings:
    """Settings reading the repo's pinned data and writing every record under tmp_path."""
    return Settings(
        project_root=repo,
        mlflow_tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        mlflow_artifact_root=tmp_path / "artifacts",
        promotion_log=tmp_path / "promotion-log.jsonl",
        manifests_dir=tmp_path / "manifests",
        state_url=f"sqlite:///{tmp_path}/state.db",
    )


@pytest.fixture
def project_copy(repo: Path, tmp_path: Path) -> Path:
    """A throwaway project root with the repo's dvc.lock and data, safe to tamper with."""
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    shutil.copy(repo / "dvc.lock", root / "dvc.lock")
    for f in (repo / "data").glob("*.json"):
        shutil.copy(f, root / "data" / f.name)
    return root


@pytest.fixture(scope="session")
def prefect_server():
    """A temporary Prefect server for flow tests (started once, ~10 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
