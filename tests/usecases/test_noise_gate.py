"""The hardware gate's mitigated and unmitigated arms on Aer with a chosen noise model, through
the real use cases (MLflow on SQLite, the SQLite state store), before paying for hardware."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import qhybrid_usecases as usecases
from qhybrid.core import ExperimentSpec, RunOptions, Settings, load_spec, spec_from_mapping
from qhybrid_usecases import Services

NOISE = {"readout": {"p1_given_0": 0.03, "p0_given_1": 0.08}}


def _on_noisy_aer(repo: Path, **target: object) -> ExperimentSpec:
    data = load_spec(repo / "specs" / "qaoa-maxcut-small.yaml").model_dump(mode="json")
    data["gates"]["hardware"] = {
        **target, "max_degradation": 0.25, "max_distance": 0.6,
        "mitigation": {"readout": True, "repeats": 3, "require_improvement": True}}
    return spec_from_mapping(data)


def test_readout_mitigation_arms_on_aer_with_a_chosen_noise(settings: Settings,
                                                            repo: Path) -> None:
    spec = _on_noisy_aer(repo, backend="aer", noise=NOISE)
    services = Services.open(settings)
    run = usecases.open_run(spec, RunOptions(), services, kind="promotion", flow_run_id=None)
    ideal = usecases.ideal_gate(run, services)
    assert ideal.trial is not None
    hardware = usecases.hardware_gate(run, services, ideal.trial)
    gate = hardware.gate
    assert gate is not None and hardware.trial is not None

    mitigation = services.log.mitigation
    assert mitigation is not None and mitigation.techniques == ("readout",)
    # Readout errors shrink every cut term <Z_i Z_j> towards 0; M3 undoes it.
    assert abs(mitigation.mitigated_value - mitigation.ideal_value) < abs(
        mitigation.unmitigated_value - mitigation.ideal_value)
    criterion = next(c for c in gate.criteria if c.name == "mitigation_improvement_low")
    assert criterion.passed and mitigation.improvement_low > 0, mitigation
    assert mitigation.observables["objective"]["mitigated"] == mitigation.mitigated_value
    # Every named observable of the family went through both arms, mitigated alike.
    workload = run.workload(services)
    assert list(mitigation.observables) == ["objective", *workload.observables]
    for name in workload.observables:
        means = mitigation.observables[name]
        assert abs(means["mitigated"] - means["ideal"]) < abs(means["unmitigated"] - means["ideal"])
    assert str(mitigation.applied_options["readout"]).startswith("mthree ")

    # Each observable's improvement is a metric of the gate (its MLflow run and its report);
    # the verdict judges the objective's alone.
    assert gate.mlflow_run_id is not None
    logged = services.tracker.get_run(gate.mlflow_run_id).metrics
    for name, values in mitigation.observables.items():
        improvement = values["unmitigated_distance"] - values["mitigated_distance"]
        for metrics in (gate.metrics, logged):
            assert metrics[f"mitigation.{name}.improvement"] == pytest.approx(improvement)
            assert metrics[f"mitigation.{name}.improvement_low"] == values["improvement_low"]
            assert metrics[f"mitigation.{name}.mitigated_distance"] == values[
                "mitigated_distance"]
        if name != "objective":  # M3 helps every cut term here
            assert improvement > 0, (name, values)
    assert gate.metrics["mitigation.objective.improvement"] == pytest.approx(
        mitigation.improvement)
    assert gate.metrics["mitigation.objective.improvement_low"] == pytest.approx(
        mitigation.improvement_low)
    assert [c.name for c in gate.criteria if "mitigation" in c.name] == [
        "mitigation_improvement_low"]

    # The backend the gate used names the noise by its section and the section's hash.
    section = spec.gates.hardware.noise
    assert section is not None
    digest = hashlib.sha256(json.dumps(section.model_dump(mode="json"), sort_keys=True,
                                       separators=(",", ":")).encode()).hexdigest()
    described = hardware.backends["hardware"]
    assert described["noise_sha256"] == digest and described["noise"]["readout"] == NOISE[
        "readout"]

    # The manifest records the section and its hash, so a replay rebuilds the same model.
    recorded = usecases.record_evidence(run, services, ideal.trial, [ideal, hardware])
    manifest = json.loads(Path(recorded.manifest).read_text())
    assert manifest["noise"] == section.model_dump(mode="json")
    assert manifest["noise_sha256"] == digest
    assert manifest["backends"]["hardware"]["noise_sha256"] == digest


def test_readout_mitigation_arms_on_a_fake_device_on_aer(settings: Settings, repo: Path) -> None:
    spec = _on_noisy_aer(repo, backend="aer-noisy:fake_lagos")
    services = Services.open(settings)
    run = usecases.open_run(spec, RunOptions(), services, kind="promotion", flow_run_id=None)
    ideal = usecases.ideal_gate(run, services)
    assert ideal.trial is not None
    gate = usecases.hardware_gate(run, services, ideal.trial).gate
    mitigation = services.log.mitigation
    assert gate is not None and mitigation is not None
    assert abs(mitigation.mitigated_value - mitigation.ideal_value) < abs(
        mitigation.unmitigated_value - mitigation.ideal_value)
    assert next(c for c in gate.criteria if c.name == "mitigation_improvement_low").passed
