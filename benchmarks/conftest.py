"""Shared fixtures for the pytest-benchmark suite (``make bench``).

The suite is skipped by the default ``--benchmark-skip`` in pyproject.toml. Two ways to run it
(see docs/benchmarks.md):

* timed: ``--benchmark-enable --benchmark-only``;
* smoke: ``--benchmark-disable``. Every benchmark function runs once, untimed, with its
  behaviour checks (``benchmark.pedantic`` then calls ``setup`` once and the target once, no
  warm-up). :func:`pytest_configure` below lets ``--benchmark-disable`` override the default
  ``--benchmark-skip`` for this folder; the ``timed`` fixture tells a benchmark which mode it is in.

Settings reach qhybrid only through ``QHYBRID_*`` environment variables, as in a deployment:
the developer's own are removed for the session, every record goes to a tmp folder, and a
benchmark that needs a fresh set of records per round points the variables at a new folder
with :func:`fresh_records`. Flows read these variables where they run.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

# Same quiet, offline defaults as the Makefile, for runs that call pytest directly.
# They must be in place before prefect/mlflow are first imported (the test modules import them).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

import pytest

from qhybrid.core import ExperimentSpec, Settings, load_spec
from tests.conftest import record_env  # one definition of the records environment

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SWEEP_INSTANCE = PROJECT_ROOT / "data" / "maxcut_3reg_10.json"
PROMOTION_SPEC = PROJECT_ROOT / "specs" / "qaoa-maxcut.yaml"


def pytest_configure(config: pytest.Config) -> None:
    """Smoke run: an explicit ``--benchmark-disable`` (without ``--benchmark-enable``) runs the
    benchmarks once as plain tests instead of skipping them.

    Runs before pytest-benchmark's own ``pytest_configure`` (``trylast``), which reads the
    option; the default ``--benchmark-skip`` comes from pyproject.toml's ``addopts``.
    """
    option = config.option
    if getattr(option, "benchmark_disable", False) and not getattr(option, "benchmark_enable",
                                                                    False):
        option.benchmark_skip = False


@pytest.fixture(scope="session")
def timed(pytestconfig: pytest.Config) -> bool:
    """Whether this session times the benchmarks: False in a ``--benchmark-disable`` smoke
    run, where each benchmark function runs once (a benchmark may then run a smaller size)."""
    return not (pytestconfig.getoption("benchmark_disable")
                and not pytestconfig.getoption("benchmark_enable"))


@pytest.fixture(scope="session")
def project_root() -> Path:
    """The qhybrid checkout (holds dvc.lock and data/)."""
    if not SWEEP_INSTANCE.exists():
        pytest.fail(f"{SWEEP_INSTANCE} is missing; run `dvc repro` (or `make data`) first")
    return PROJECT_ROOT


@pytest.fixture(scope="session", autouse=True)
def qhybrid_env(project_root: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """For the whole session: none of the developer's ``QHYBRID_*`` variables, and every
    record in a session tmp folder (the project's ``mlruns/`` and ``.qhybrid/`` are never
    touched). Restored when the session ends."""
    with pytest.MonkeyPatch.context() as env:
        for key in list(os.environ):
            if key.startswith("QHYBRID_"):
                env.delenv(key)
        values = record_env(tmp_path_factory.mktemp("qhybrid-records"))
        for key, value in values.items():
            env.setenv(key, value)
        yield values


@pytest.fixture(scope="session")
def tmp_settings(qhybrid_env: dict[str, str]) -> Settings:
    """The session's settings, read from its ``QHYBRID_*`` variables (for benchmarks that
    open an engine or executor directly; flows read the variables themselves)."""
    return Settings()


@pytest.fixture
def fresh_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], Settings]:
    """Call it (e.g. in a pedantic ``setup``) to point ``QHYBRID_*`` at a new, empty records
    folder under this test's tmp_path; returns the settings read from them. The variables are
    restored when the test ends."""
    numbers = itertools.count()

    def point() -> Settings:
        root = tmp_path / f"records-{next(numbers)}"
        root.mkdir()
        for key, value in record_env(root).items():
            monkeypatch.setenv(key, value)
        return Settings()

    return point


@pytest.fixture(scope="session")
def promotion_spec(project_root: Path) -> ExperimentSpec:
    """The bundled promotion spec (specs/qaoa-maxcut.yaml)."""
    return load_spec(PROMOTION_SPEC)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A throwaway Prefect server and database for the flows (started once per session).

    Requested only by benchmarks that run a flow or Prefect tasks (and by the promotion's
    Prefect-free parts, so that all three run in the same process state); the sweep never
    starts a server.
    """
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
