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


@pytest.mark.slow
def test_the_ghz_readout_example_shows_the_known_error_and_mitigation_undoing_it(
        prefect_server, qhybrid_env, tmp_path: Path) -> None:
    spec = REPO / "specs" / "ghz-readout.yaml"
    readout = yaml.safe_load(spec.read_text())["gates"]["hardware"]["noise"]["readout"]
    p10, p01 = readout["p1_given_0"], readout["p0_given_1"]
    # <Z_i Z_j> on (|000> + |111>)/sqrt(2) with independent readout flips: each qubit's Z
    # reads 1 - 2 P(1|0) on |0> and -(1 - 2 P(0|1)) on |1>.
    raw = ((1 - 2 * p10) ** 2 + (1 - 2 * p01) ** 2) / 2
    result = CliRunner().invoke(app, ["promote", str(spec), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    hardware = next(g for g in report["gates"] if g["gate"] == "hardware")
    assert hardware["backend"] == "aer" and hardware["passed"], hardware
    for parity in ("zz01", "zz12", "zz02"):
        value, stderr = hardware["metrics"][parity], hardware["metrics"][f"{parity}.stderr"]
        assert 0 < stderr < 0.05 and abs(value - raw) <= 3 * stderr, (parity, value, stderr)
    mitigation = json.loads(Path(report["manifest"]).read_text())["execution"]["mitigation"]
    assert mitigation["applied_options"]["readout"].startswith("mthree")
    stderr = mitigation["mitigated_std"] / mitigation["repeats"] ** 0.5
    assert 0 < stderr < 0.05 and abs(mitigation["mitigated_value"] - 1) <= 3 * stderr, mitigation
    assert report["decision"]["promote"] is True
    # Each parity's improvement is on the gate too; the verdict judged the objective's.
    for parity in ("zz01", "zz12", "zz02", "mean_zz"):
        assert hardware["metrics"][f"mitigation.{parity}.improvement_low"] > 0, parity

    # A replay samples the noisy hardware counts again, with the recorded noise section.
    replayed = CliRunner().invoke(app, ["replay", report["manifest"], "--json"])
    assert replayed.exit_code == 0, replayed.output
    noisy = json.loads(replayed.stdout)["noisy"]
    assert (noisy["status"], noisy["backend"]) == ("identical", "aer"), noisy


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

