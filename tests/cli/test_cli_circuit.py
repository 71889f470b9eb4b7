"""``kind: circuit`` through the command line: the bundled GHZ experiment runs on the ideal
simulator, and a spec that does not fit its circuit is refused naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from qhybrid_entrypoints.cli import app
from tests.cli.test_cli import _spec

REPO = Path(__file__).resolve().parents[2]


def test_qhybrid_run_of_the_ghz_spec_measures_parities_of_one(prefect_server, qhybrid_env,
                                                              tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(REPO / "specs" / "ghz.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # exactly one JSON document on stdout
    assert (report["family"], report["objective"], report["direction"]) == (
        "circuit", "mean_zz", "maximise")
    assert report["backend"] == "aer" and report["parameters"] == {}
    metrics = report["metrics"]
    # (|000> + |111>)/sqrt(2): every Z-parity and the X-parity are +1, exactly.
    for parity in ("zz01", "zz12", "zz02", "xxx", "mean_zz"):
        assert abs(metrics[parity] - 1.0) < 1e-9, parity
    assert metrics["exact"] == 1.0 and metrics["quality"] == pytest.approx(1.0, abs=1e-9)
    assert report["mlflow_run_id"] and Path(report["manifest"]).is_file()


@pytest.mark.parametrize(("family", "field"), [
    ({"objective": "nope"}, "family.objective"),
    ({"observables": {"zz": [["ZZ", 1.0]]}, "objective": "zz"}, "family.observables.zz"),
])
def test_a_spec_that_does_not_fit_its_circuit_exits_2_naming_the_field(
        qhybrid_env, tmp_path: Path, family: dict[str, object], field: str) -> None:
    ghz = yaml.safe_load((REPO / "specs" / "ghz.yaml").read_text())["family"]
    spec = _spec(tmp_path, "ghz.yaml", family={**ghz, **family})
    result = CliRunner().invoke(app, ["run", str(spec), "--json"])
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["error"]["field"] == field
    assert not (tmp_path / "mlflow.db").exists()

