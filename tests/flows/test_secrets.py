"""The IBM token never reaches a log line, MLflow, a manifest, a report or Prefect's store."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path

import pytest
from pydantic import SecretStr

from flows import promote_experiment
from qhybrid.core import load_spec

SENTINEL = "sentinel-token-3f9c1e77d2"


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_sentinel_token_appears_nowhere(prefect_server, configure, repo: Path, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture, capfd) -> None:
    caplog.set_level(logging.DEBUG)
    assert configure(ibm_token=SENTINEL).ibm_token == SecretStr(SENTINEL)
    report = promote_experiment(load_spec(repo / "specs" / "vqe-h2.yaml"))
    assert report.decision is not None

    assert SENTINEL not in report.model_dump_json()
    assert SENTINEL not in caplog.text
    out, err = capfd.readouterr()
    assert SENTINEL not in out + err
    # MLflow store, artifacts, manifests and promotion log all live under tmp_path.
    assert _files_containing(tmp_path, SENTINEL.encode()) == []
    # Prefect's store: flow-run parameters, logs, artifacts.
    from prefect.settings import get_current_settings

    url = get_current_settings().server.database.connection_url.get_secret_value()
    db_path = url.split("///", 1)[-1]
    assert os.path.exists(db_path), url
    with sqlite3.connect(db_path) as db:
        params = db.execute("select parameters from flow_run where id = ?",
                            (report.prefect_flow_run_id,)).fetchone()[0]
        assert set(json.loads(params)) == {"spec", "options"}  # settings are no parameter
        for table in ("flow_run", "task_run", "log", "artifact"):
            rows = db.execute(f"select * from {table}").fetchall()  # noqa: S608 - fixed names
            assert SENTINEL not in repr(rows), table


def test_token_from_a_prefect_secret_block_appears_nowhere(prefect_server, settings, configure,
                                                           repo: Path, tmp_path: Path,
                                                           capfd) -> None:
    from prefect.blocks.system import Secret

    from qhybrid.core import BackendNameError
    from tasks import read_settings, resolve_ibm_token

    Secret(value=SENTINEL + "-block").save("qhybrid-test-ibm-token", overwrite=True)
    with pytest.raises(BackendNameError) as info:
        resolve_ibm_token(settings.model_copy(update={"ibm_token_block": "no-such-block"}))
    assert info.value.field == "ibm_token_block"
    direct = settings.model_copy(update={"ibm_token": SecretStr("direct"),
                                         "ibm_token_block": "qhybrid-test-ibm-token"})
    assert resolve_ibm_token(direct).ibm_token.get_secret_value() == "direct"
    configure(ibm_token_block="qhybrid-test-ibm-token")
    token = read_settings().ibm_token  # what a flow reads where it runs
    assert token is not None and token.get_secret_value() == SENTINEL + "-block"

    report = promote_experiment(load_spec(repo / "specs" / "vqe-h2.yaml"))
    assert SENTINEL not in report.model_dump_json()
    out, err = capfd.readouterr()
    assert SENTINEL not in out + err
    assert _files_containing(tmp_path, SENTINEL.encode()) == []


DB_SENTINEL = "pw-sentinel-5e8a0b"


@pytest.fixture(scope="module")
def password_stores(tmp_path_factory: pytest.TempPathFactory):
    """An embedded PostgreSQL with a role whose password is the sentinel, and one database for
    the state store and one for MLflow: (state URL, tracking URI)."""
    import warnings

    from platformdirs.api import RuntimeDirWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeDirWarning)  # pgserver falls back to /tmp
        import pgserver

        server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    try:
        server.psql(f"create role qh login password '{DB_SENTINEL}'; "
                    "create database qh_state owner qh; create database qh_mlflow owner qh;")
        base = server.get_uri().replace("postgresql://postgres:@",
                                        f"postgresql+psycopg://qh:{DB_SENTINEL}@")
        yield (base.replace("/postgres?", "/qh_state?"), base.replace("/postgres?", "/qh_mlflow?"))
    finally:
        server.cleanup()


def test_a_password_in_the_store_urls_appears_nowhere(prefect_server, configure, repo: Path,
                                                      tmp_path: Path, password_stores,
                                                      caplog: pytest.LogCaptureFixture,
                                                      capfd) -> None:
    from typer.testing import CliRunner

    from qhybrid_entrypoints.cli import app

    caplog.set_level(logging.DEBUG)
    state_url, tracking_uri = password_stores
    configure(state_url=state_url, mlflow_tracking_uri=tracking_uri)
    report = promote_experiment(load_spec(repo / "specs" / "vqe-h2.yaml"))
    assert report.decision is not None and report.mlflow_run_id
    # What users print: the report, the records listing, a refused run's error.
    shown = [CliRunner().invoke(app, args) for args in (
        ["run", str(repo / "specs" / "vqe-h2.yaml")], ["experiments"],
        ["show", report.mlflow_run_id, "--json"], ["leases"])]
    assert [r.exit_code for r in shown] == [0, 0, 0, 0], [r.output for r in shown]
    assert "mlflow ui --backend-store-uri postgresql+psycopg://qh:***@" in shown[0].stdout
    texts = [report.model_dump_json(), caplog.text, *(r.stdout + r.stderr for r in shown)]
    out, err = capfd.readouterr()
    assert all(DB_SENTINEL not in text for text in [*texts, out, err])
    assert _files_containing(tmp_path, DB_SENTINEL.encode()) == []
    from prefect.settings import get_current_settings

    url = get_current_settings().server.database.connection_url.get_secret_value()
    with sqlite3.connect(url.split("///", 1)[-1]) as db:
        for table in ("flow_run", "task_run", "log", "artifact"):
            rows = db.execute(f"select * from {table}").fetchall()  # noqa: S608 - fixed names
            assert DB_SENTINEL not in repr(rows), table
