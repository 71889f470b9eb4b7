"""A ``kind: circuit`` spec whose observables come from a file (``family.observables_path``):
pinned by dvc.lock like the dataset, recorded with its md5, and giving the metrics the same
observables give inline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import qhybrid_usecases as usecases
from qhybrid.core import (
    DataError,
    ExperimentSpec,
    RunOptions,
    Settings,
    SpecError,
    load_spec,
    spec_from_mapping,
)
from qhybrid.experiments import ghz_observables
from qhybrid_entrypoints.cli import app
from qhybrid_usecases import Services
from registry import read_manifest

OBSERVABLES = "data/ghz_3_observables.json"


def _run(spec: ExperimentSpec, settings: Settings) -> tuple[dict[str, float], Path]:
    services = Services.open(settings)
    run = usecases.open_run(spec, RunOptions(), services, kind="run", flow_run_id=None)
    outcome = usecases.run_on_backend(run, services)
    assert outcome.trial is not None
    recorded = usecases.record_evidence(run, services, outcome.trial, [outcome])
    return outcome.trial.metrics, Path(recorded.manifest)


def test_the_file_gives_the_metrics_the_inline_observables_give(settings: Settings,
                                                                repo: Path) -> None:
    inline, _ = _run(load_spec(repo / "specs" / "ghz.yaml"), settings)
    from_file, manifest = _run(load_spec(repo / "specs" / "ghz-observables-file.yaml"), settings)
    assert from_file["exact"] == 1.0
    assert from_file == inline  # every value, exact and sampled, bit for bit
    assert {"zz01", "zz12", "zz02", "xxx", "mean_zz"} <= set(from_file)
    # The file is an input like the dataset: its md5 and dvc.lock pin are in the manifest.
    data = json.loads(manifest.read_text())["data"]
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["ghz-3-observables"]
    assert data[OBSERVABLES]["md5"] == lock["outs"][0]["md5"]
    assert data[OBSERVABLES]["stage"] == "ghz-3-observables" and data[OBSERVABLES]["matches_lock"]
    # A replay reads the file again (after checking its md5) and reproduces the run.
    assert usecases.replay(manifest, settings).reproduced


def test_a_promoted_file_spec_predicts_with_the_file_observables(
        project_copy: Path, configure, repo: Path) -> None:
    """Evaluation (the job service, pyfunc predict) reads the promoted file, checked against
    its recorded md5, also for an instance of the caller's."""
    from qhybrid_usecases._predict import predict_values

    settings = configure(project_root=project_copy)
    _, manifest_path = _run(load_spec(repo / "specs" / "ghz-observables-file.yaml"), settings)
    manifest = read_manifest(manifest_path)
    model = usecases.PromotedExperiment(
        name="ghz", alias="champion", version="1", manifest=manifest,
        spec=spec_from_mapping(manifest.spec))
    services = Services.open(settings)
    # mean_zz on a Bell pair on qubits 0 and 1 with qubit 2 alone: (1 + 0 + 0) / 3.
    bell = {"kind": "circuit", "format": "qasm3", "source": (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[3] q;\nh q[0];\ncx q[0], q[1];\n'
        "h q[2];\n")}
    assert predict_values(services, model, []).values == pytest.approx((1.0,))
    assert predict_values(services, model, [], instance=bell).values == pytest.approx((1 / 3,))
    _tamper(project_copy)
    for instance in (None, bell):
        with pytest.raises(DataError, match="was promoted on") as refused:
            predict_values(services, model, [], instance=instance)
        assert OBSERVABLES in refused.value.message


def test_a_spec_dumps_only_the_source_of_observables_it_gives(repo: Path) -> None:
    # So an inline spec hashes (spec_sha256, evidence keys) as before observables_path existed,
    # and recorded manifests of such specs stay consistent with their hashes.
    inline = load_spec(repo / "specs" / "ghz.yaml").model_dump(mode="json")["family"]
    spec = load_spec(repo / "specs" / "ghz-observables-file.yaml")
    from_file = spec.model_dump(mode="json")
    assert "observables_path" not in inline and "observables" in inline
    assert "observables" not in from_file["family"]
    assert spec_from_mapping(from_file) == spec  # the dump reads back as the same spec


def test_the_generated_file_holds_the_inline_spec_observables(repo: Path) -> None:
    inline = yaml.safe_load((repo / "specs" / "ghz.yaml").read_text())["family"]["observables"]
    assert json.loads((repo / OBSERVABLES).read_text()) == inline
    assert ghz_observables(3) == inline
    assert list(ghz_observables(12))[:2] == ["zz0_1", "zz1_2"]  # digits kept apart


def _tamper(root: Path) -> None:
    path = root / OBSERVABLES
    path.write_text(path.read_text().replace('"XXX", 1.0', '"XXX", -1.0'))


def test_an_edited_observables_file_is_refused_like_a_changed_dataset(
        project_copy: Path, configure, repo: Path) -> None:
    settings = configure(project_root=project_copy)
    spec = load_spec(repo / "specs" / "ghz-observables-file.yaml")
    _tamper(project_copy)
    with pytest.raises(DataError) as refused:
        usecases.load_inputs(spec, settings, allow_unpinned_data=False)
    assert refused.value.field == "family.observables_path"
    message = refused.value.message
    assert "dvc.lock pins" in message and "dvc repro ghz-3-observables" in message
    assert "--allow-unpinned-data" in message

    # Allowed on request, and recorded as an override.
    inputs = usecases.load_inputs(spec, settings, allow_unpinned_data=True)
    [override] = inputs.overrides
    assert override.startswith(f"{OBSERVABLES} has md5 ")
    assert inputs.workload.observables["xxx"].coeffs.real.tolist() == [-1.0]


def test_the_command_line_refuses_an_edited_observables_file_before_it_starts(
        project_copy: Path, configure, repo: Path, tmp_path: Path) -> None:
    configure(project_root=project_copy)
    _tamper(project_copy)
    spec = repo / "specs" / "ghz-observables-file.yaml"
    result = CliRunner().invoke(app, ["run", str(spec), "--json"])
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert error["field"] == "family.observables_path", error
    assert "--allow-unpinned-data" in error["message"]
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(("text", "error", "field", "words"), [
    ('{"zz01": [["IZQ", 1.0]], "mean_zz": [["IZZ", 1.0]]}', SpecError,
     "family.observables_path", "zz01: Pauli label 'IZQ'"),
    ('{"zz01": [["IZZ", "one"]], "mean_zz": [["IZZ", 1.0]]}', SpecError,
     "family.observables_path", "zz01.0.1"),
    ('{"zz01": [["IZZ", 1.0]]}', SpecError, "family.objective", "'mean_zz' is not one of"),
    ('[["IZZ", 1.0]]', SpecError, "family.observables_path", "must be a mapping"),
    ('{"mean_zz": [["IZZ", NaN]]}', DataError, "family.observables_path", "not a JSON number"),
    ('{"mean_zz": [["IZZ", 1.0]', DataError, "family.observables_path", "not valid JSON"),
])
def test_a_malformed_observables_file_names_the_field(
        project_copy: Path, configure, repo: Path, text: str, error: type[Exception],
        field: str, words: str) -> None:
    settings = configure(project_root=project_copy)
    (project_copy / OBSERVABLES).write_text(text)
    spec = load_spec(repo / "specs" / "ghz-observables-file.yaml")
    with pytest.raises(error) as refused:
        usecases.load_inputs(spec, settings, allow_unpinned_data=True)
    assert refused.value.field == field  # type: ignore[attr-defined]
    assert words in refused.value.message, refused.value.message  # type: ignore[attr-defined]


@pytest.mark.parametrize(("family", "words"), [
    ({"observables": {"mean_zz": [["IZZ", 1.0]]}, "observables_path": OBSERVABLES}, "not both"),
    ({}, "give the observables inline"),
    ({"observables_path": "data/ghz_3_observables.txt"}, "must be a .json, .yaml, .yml file"),
    ({"observables_path": "../outside.json"}, "inside the project"),
])
def test_observables_come_from_the_spec_or_a_file_never_both(repo: Path, family, words) -> None:
    data = yaml.safe_load((repo / "specs" / "ghz-observables-file.yaml").read_text())
    data["family"] = {"kind": "circuit", "objective": "mean_zz", **family}
    with pytest.raises(SpecError) as refused:
        spec_from_mapping(data)
    assert refused.value.field == "family.observables_path"
    assert words in refused.value.message, refused.value.message


def test_a_yaml_file_of_observables_reads_as_json_does(project_copy: Path, configure,
                                                      repo: Path) -> None:
    settings = configure(project_root=project_copy)
    observables = json.loads((repo / OBSERVABLES).read_text())
    (project_copy / "data" / "ghz_3_observables.yaml").write_text(
        yaml.safe_dump(observables, sort_keys=False))
    data = yaml.safe_load((repo / "specs" / "ghz-observables-file.yaml").read_text())
    data["family"]["observables_path"] = "data/ghz_3_observables.yaml"
    spec = spec_from_mapping(data)
    # Not a dvc.yaml output, so only on request (and recorded as such).
    with pytest.raises(DataError, match=r"not the output of any dvc\.yaml stage"):
        usecases.load_inputs(spec, settings, allow_unpinned_data=False)
    inputs = usecases.load_inputs(spec, settings, allow_unpinned_data=True)
    assert list(inputs.workload.observables) == list(observables)
