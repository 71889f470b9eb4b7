"""A new MLflow SQLite store starts as a copy of an empty one made once per machine: the same
schema MLflow's migrations build, without running them for every store."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import mlflow.store.db.utils
import pytest
from mlflow.tracking import MlflowClient

from registry import Tracker
from registry._store_opening import template_path


def _schema(database: Path) -> tuple[dict[str, list[str]], list[tuple[str, ...]]]:
    """Each table's and index's definition as sorted lines (MLflow's own migrations order a
    table's constraints differently from one new database to the next), and the schema
    version."""
    with closing(sqlite3.connect(database)) as connection:
        tables = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
        version = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    return ({name: sorted(line.strip().rstrip(",").strip() for line in sql.splitlines())
             for name, sql in tables}, version)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def migrations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The databases MLflow migrates from empty, in order."""
    migrated: list[str] = []
    initialize = mlflow.store.db.utils._initialize_tables

    def counted(engine: object) -> None:
        migrated.append(str(engine.url))  # type: ignore[attr-defined]
        initialize(engine)

    monkeypatch.setattr(mlflow.store.db.utils, "_initialize_tables", counted)
    return migrated


def _used(tracker: Tracker) -> str:
    run = tracker.start_run("r", tags={"k": "v"})
    tracker.log_metrics(run, {"m": 1.0})
    version = tracker.register_version("model", run, "experiment", {"qhybrid.score": "0.5"})
    tracker.set_alias("model", "champion", version)
    tracker.end_run(run)
    return run


def test_new_stores_are_copies_of_one_migrated_once(tmp_path: Path, cache: Path,
                                                     migrations: list[str]) -> None:
    first = Tracker(f"sqlite:///{tmp_path}/a/mlflow.db", tmp_path / "a" / "artifacts", "t")
    assert template_path().is_relative_to(cache) and template_path().is_file()
    assert len(migrations) == 1 and "mlflow.db" not in migrations[0]  # the template's only
    second = Tracker(f"sqlite:///{tmp_path}/b/mlflow.db", tmp_path / "b" / "artifacts", "t")
    assert len(migrations) == 1

    for tracker in (first, second):
        run = _used(tracker)
        assert tracker.get_run(run).status == "FINISHED"
        assert tracker.version_by_alias("model", "champion") is not None

    # What MLflow itself builds for a new store: the same tables, indexes and schema version,
    # and its default experiment with this store's own artifact location.
    plain = tmp_path / "plain.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{plain}", registry_uri=f"sqlite:///{plain}")
    client.search_registered_models(max_results=1)
    assert len(migrations) == 2
    assert _schema(tmp_path / "b" / "mlflow.db") == _schema(plain)
    copied = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/b/mlflow.db")
    assert copied.get_experiment("0").artifact_location == client.get_experiment(
        "0").artifact_location
    assert not list(tmp_path.glob("*/mlflow.db.new"))


def test_a_store_is_still_made_when_the_template_cannot_be(tmp_path: Path, cache: Path,
                                                          migrations: list[str]) -> None:
    cache.write_text("a file where the cache folder should be")
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "artifacts", "t")
    assert tracker.get_run(_used(tracker)).status == "FINISHED"
    assert len(migrations) == 1 and "mlflow.db" in migrations[0]  # MLflow migrated it


def test_an_existing_store_is_never_replaced(tmp_path: Path, cache: Path) -> None:
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "artifacts", "t")
    run = _used(tracker)
    before = (tmp_path / "mlflow.db").stat().st_ino
    again = Tracker(f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "artifacts", "t")
    assert (tmp_path / "mlflow.db").stat().st_ino == before
    assert again.get_run(run).status == "FINISHED"


@pytest.mark.parametrize("damage", ["not a database", "an older schema"])
def test_a_damaged_template_is_discarded_and_made_again(
        tmp_path: Path, cache: Path, migrations: list[str], damage: str,
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("registry._store_opening._TEMPLATE_REFUSED", [])  # warned once a process
    Tracker(f"sqlite:///{tmp_path}/a/mlflow.db", tmp_path / "a" / "artifacts", "t")
    template = template_path()
    if damage == "not a database":
        template.write_bytes(b"\0" * 4096)
    else:
        with closing(sqlite3.connect(template)) as connection, connection:
            connection.execute("UPDATE alembic_version SET version_num = '0584bdc529eb'")
    assert len(migrations) == 1

    damaged = Tracker(f"sqlite:///{tmp_path}/b/mlflow.db", tmp_path / "b" / "artifacts", "t")
    assert damaged.get_run(_used(damaged)).status == "FINISHED"
    assert len(migrations) == 2 and "b/mlflow.db" in migrations[1]  # built by MLflow
    assert not template.exists() and not (tmp_path / "b" / "mlflow.db.new").exists()
    assert [r.message for r in caplog.records if "could not be used" in r.message]

    Tracker(f"sqlite:///{tmp_path}/c/mlflow.db", tmp_path / "c" / "artifacts", "t")
    assert len(migrations) == 3 and "c/mlflow.db" not in migrations[2]  # the template again
    assert template.is_file()


def _journal_mode(database: Path) -> str:
    with closing(sqlite3.connect(database)) as connection:
        return str(connection.execute("PRAGMA journal_mode").fetchone()[0])


@pytest.mark.parametrize("made_by", ["template", "mlflow"])
def test_a_store_is_kept_in_write_ahead_log_mode(tmp_path: Path, cache: Path,
                                                 made_by: str) -> None:
    # A store from before (rollback journal, SQLite's default), or one MLflow built itself.
    if made_by == "mlflow":
        cache.write_text("a file where the cache folder should be")
    else:
        Tracker(f"sqlite:///{tmp_path}/old/mlflow.db", tmp_path / "artifacts", "t")
        with closing(sqlite3.connect(tmp_path / "old" / "mlflow.db")) as connection:
            connection.execute("PRAGMA journal_mode=DELETE")
        assert _journal_mode(tmp_path / "old" / "mlflow.db") == "delete"
    database = tmp_path / ("old" if made_by == "template" else "new") / "mlflow.db"
    tracker = Tracker(f"sqlite:///{database}", tmp_path / "artifacts", "t")
    assert tracker.get_run(_used(tracker)).status == "FINISHED"
    assert _journal_mode(database) == "wal"
