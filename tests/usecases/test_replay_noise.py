"""Replay reproduces the hardware gate's noise: where the gate ran on Aer (a noise section, or
an ``aer-noisy:`` device), its recorded noisy counts are sampled again on real Aer and compared
bit for bit, so a noise model changed together with its hash is caught (exit 7)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import qhybrid_usecases as usecases
from qhybrid.core import RunOptions, Settings, load_spec, spec_from_mapping
from qhybrid_entrypoints.cli import app
from tests.conftest import record_env

READOUT = {"p1_given_0": 0.03, "p0_given_1": 0.08}
TARGETS = {
    "noise-section": {"backend": "aer", "noise": {"readout": READOUT}},
    "fake-device": {"backend": "aer-noisy:fake_manila"},
}


def _sha256(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
                          ).hexdigest()


@pytest.fixture(scope="module", params=list(TARGETS))
def recorded(request: pytest.FixtureRequest, repo: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The manifest of the GHZ example's ideal and hardware gates on a noisy Aer target (no
    mitigation: only the gate's own sampling matters here)."""
    data = load_spec(repo / "specs" / "ghz-readout.yaml").model_dump(mode="json")
    data["gates"]["hardware"] = {**TARGETS[request.param], "max_distance": 0.6}
    spec = spec_from_mapping(data)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in record_env(tmp_path_factory.mktemp("recorded")).items():
            patch.setenv(key, value)
        services = usecases.Services.open(Settings())
        run = usecases.open_run(spec, RunOptions(), services, kind="promotion",
                                flow_run_id=None)
        ideal = usecases.ideal_gate(run, services)
        assert ideal.trial is not None
        hardware = usecases.hardware_gate(run, services, ideal.trial)
        recorded = usecases.record_evidence(run, services, ideal.trial, [ideal, hardware])
    return Path(recorded.manifest)


@pytest.fixture
def manifest(recorded: Path, tmp_path: Path) -> Path:
    copy = tmp_path / recorded.name
    shutil.copy(recorded, copy)
    return copy


def _replay(manifest: Path) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(app, ["replay", str(manifest), "--json"])
    document = json.loads(result.stdout)
    return result.exit_code, document


def test_the_noisy_counts_are_recorded_and_sampled_again_bit_for_bit(manifest: Path) -> None:
    data = json.loads(manifest.read_text())
    hardware = data["hardware"]
    target = data["spec"]["gates"]["hardware"]
    assert hardware["backend"] == target["backend"]
    assert hardware["noise_applied"] is ("noise" in target and target["noise"] is not None)
    assert hardware["counts_sha256"] == _sha256(hardware["counts"])
    # Noisy indeed: outcomes the ideal GHZ state never gives.
    assert sum(hardware["counts"].values()) == data["shots"]
    assert set(hardware["counts"]) - {"000", "111"}
    assert set(data["ideal_counts"]) == {"000", "111"}

    code, report = _replay(manifest)
    assert code == 0, report
    noisy = report["noisy"]
    assert noisy["status"] == "identical" and noisy["differing_outcomes"] == 0, noisy
    assert noisy["backend"] == target["backend"]
    assert noisy["replayed_sha256"] == noisy["recorded_sha256"] == hardware["counts_sha256"]
    assert noisy["noise_sha256"] == data["noise_sha256"]


def test_a_noise_model_changed_with_its_hash_is_caught_by_sampling_again(
        manifest: Path) -> None:
    data = json.loads(manifest.read_text())
    hardware = data["spec"]["gates"]["hardware"]
    # Another noise model, recorded consistently: spec, its hash, the section and its hash.
    hardware["noise"] = {"readout": {"p1_given_0": 0.05, "p0_given_1": 0.08}}
    spec = spec_from_mapping(data["spec"])
    data["spec"], data["spec_sha256"] = spec.model_dump(mode="json"), spec.sha256()
    noise = spec.gates.hardware.noise
    assert noise is not None
    data["noise"], data["noise_sha256"] = noise.model_dump(mode="json"), noise.sha256()
    data["hardware"]["noise_applied"] = True
    manifest.write_text(json.dumps(data))

    code, document = _replay(manifest)
    assert code == 7, document
    error = document["error"]
    assert error["error"] == "ReplayMismatchError" and error["field"] == "MANIFEST"
    assert "integrity" not in error["detail"]  # consistent: it was sampled again
    assert error["detail"]["identical"] is True  # the ideal part does not see the noise
    noisy = error["detail"]["noisy"]
    assert noisy["status"] == "different" and noisy["differing_outcomes"] > 0, noisy
    assert noisy["noise_sha256"] == noise.sha256()
    assert "noisy counts" in error["message"]


def test_rewritten_noisy_counts_with_their_hash_are_caught(manifest: Path) -> None:
    data = json.loads(manifest.read_text())
    counts = data["hardware"]["counts"]
    top, other = sorted(counts, key=counts.get, reverse=True)[:2]
    counts[top] -= 1
    counts[other] += 1
    data["hardware"]["counts_sha256"] = _sha256(counts)
    manifest.write_text(json.dumps(data))
    code, document = _replay(manifest)
    assert code == 7, document
    noisy = document["error"]["detail"]["noisy"]
    assert noisy["status"] == "different" and noisy["differing_outcomes"] == 2


@pytest.mark.parametrize("forgery", ["counts", "backend", "noise_applied"])
def test_a_forged_hardware_record_is_refused_before_anything_runs(manifest: Path,
                                                                  forgery: str) -> None:
    data = json.loads(manifest.read_text())
    hardware = data["hardware"]
    if forgery == "counts":  # counts rewritten, their hash left
        hardware["counts"] = {"000": data["shots"]}
    elif forgery == "backend":  # a backend a replay cannot run, to dodge the comparison
        hardware["backend"] = "ibm:fake_manila"
    else:
        hardware["noise_applied"] = not hardware["noise_applied"]
    manifest.write_text(json.dumps(data))
    code, document = _replay(manifest)
    assert code == 7, document
    [problem] = document["error"]["detail"]["integrity"]
    wanted = {"counts": "hardware.counts_sha256", "backend": "hardware.backend",
              "noise_applied": "hardware.noise_applied"}[forgery]
    assert problem.startswith(f"{wanted}: "), problem


def test_an_ibm_target_cannot_be_sampled_again_and_the_report_says_so(manifest: Path) -> None:
    data = json.loads(manifest.read_text())
    data["spec"]["gates"]["hardware"] = {"backend": "ibm:fake_manila", "max_distance": 0.6}
    spec = spec_from_mapping(data["spec"])
    data["spec"], data["spec_sha256"] = spec.model_dump(mode="json"), spec.sha256()
    data["noise"] = data["noise_sha256"] = None
    data["hardware"] |= {"backend": "ibm:fake_manila", "noise_applied": False}
    manifest.write_text(json.dumps(data))
    code, report = _replay(manifest)
    assert code == 0, report
    noisy = report["noisy"]
    assert noisy["status"] == "not-applicable" and noisy["replayed_sha256"] is None
    assert "cannot run again" in noisy["reason"]


def test_a_manifest_without_hardware_counts_replays_its_ideal_part(manifest: Path) -> None:
    data = json.loads(manifest.read_text())
    del data["hardware"]  # as written before the counts were recorded
    manifest.write_text(json.dumps(data))
    code, report = _replay(manifest)
    assert code == 0, report
    assert report["identical"] and report["noisy"]["status"] == "not-recorded"
