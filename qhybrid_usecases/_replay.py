"""Replay the simulator part of a recorded run and compare counts and circuit bit for bit.

A manifest is first checked against itself: the recorded hashes must match the recorded spec,
noise section, counts and circuit files. A manifest edited to hide a change (counts rewritten,
a hash replaced) is refused before anything runs.

Then the final circuit is sampled again on ideal Aer, and, where the hardware gate ran on Aer
(a noise section, or an ``aer-noisy:`` device), its noisy counts too, with the recorded noise,
seeds and shots: a noise section changed together with its hash is caught there, since the
model it builds samples other counts. A gate that ran on an ``ibm:`` backend cannot be
executed again here; the report says so.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from backends import open_executor
from qhybrid.core import (
    DataError,
    ExperimentSpec,
    NoiseSpec,
    NoisyReplayResult,
    ReplayMismatchError,
    ReplayReport,
    RunManifest,
    Settings,
    SpecError,
    parse_backend_name,
    spec_from_mapping,
)
from qhybrid.experiments import Workload, bind, qasm3_sha256
from qhybrid_usecases._inputs import build_spec_workload
from qhybrid_usecases._records import counts_sha256
from registry import file_md5, read_manifest


def replay(path: Path, settings: Settings) -> ReplayReport:
    """Rebuild the final circuit from the manifest at ``path`` and sample it on ideal Aer with
    its recorded seeds and shots; and on the hardware gate's Aer backend with its recorded
    noise, where the gate ran on one.

    Raises:
        InvalidInputError: The manifest is missing or invalid.
        DataError: The input data is missing or is not the data the run used.
        ReplayMismatchError: The manifest does not match its own hashes.
    """
    manifest = read_manifest(path)
    verify_integrity(manifest, path)
    spec = spec_from_mapping(manifest.spec, source="manifest.spec")
    for rel, pin in manifest.data.items():
        full = settings.project_root / rel
        if not full.is_file():
            raise DataError(f"{rel} is missing; run `dvc pull` or `dvc repro`", field="data")
        if file_md5(full) != pin.md5:
            raise DataError(f"{rel} differs from the data this run used (md5 {pin.md5})",
                            field="data")
    workload = build_spec_workload(spec, settings.project_root)
    parameters = np.array(manifest.parameters, dtype=float)
    # A fresh in-memory store and no faults: a replay executes again, never re-attaches.
    quiet = settings.model_copy(update={"faults": ""})
    backend = open_executor("aer", quiet, transpiler_seed=manifest.seeds.transpiler)
    counts = backend.sample(workload.measured, workload.circuit_points(parameters),
                            shots=manifest.shots, seed=manifest.seeds.simulator)[0]
    final = next((c for c in manifest.circuits if c.role == "final"), None)
    circuit_same = final is not None and _final_sha256(workload, parameters) == final.sha256
    differing = _differing(counts, manifest.ideal_counts)
    return ReplayReport(
        manifest=str(path), mlflow_run_id=manifest.mlflow_run_id, identical=differing == 0,
        circuit_identical=circuit_same, recorded_sha256=manifest.ideal_counts_sha256,
        replayed_sha256=counts_sha256(counts), differing_outcomes=differing,
        noisy=_replay_noisy(manifest, workload, parameters, quiet),
    )


def _differing(counts: dict[str, int], recorded: dict[str, int]) -> int:
    """Bitstrings whose counts differ."""
    return sum(1 for k in set(counts) | set(recorded) if counts.get(k) != recorded.get(k))


def _replay_noisy(manifest: RunManifest, workload: Workload, parameters: np.ndarray,
                  settings: Settings) -> NoisyReplayResult:
    """The hardware gate's counts sampled again on its Aer backend, with the recorded noise
    section (where the gate simulated it), transpiler and simulator seeds and shots."""
    record = manifest.hardware
    if record is None:
        return NoisyReplayResult(
            status="not-recorded", reason="the manifest records no hardware counts (a run "
            "without the hardware gate, or a manifest written before they were recorded)")
    name = parse_backend_name(record.backend, field="MANIFEST")
    if name.kind == "ibm":
        return NoisyReplayResult(
            status="not-applicable", backend=record.backend,
            recorded_sha256=record.counts_sha256,
            reason=f"{record.backend} executes on IBM's side (a device, or qiskit-ibm-runtime's "
            "local testing mode), which a replay cannot run again; its counts stay as recorded")
    noise = (NoiseSpec.model_validate(manifest.noise)
             if record.noise_applied and manifest.noise is not None else None)
    executor = open_executor(record.backend, settings, transpiler_seed=manifest.seeds.transpiler,
                             noise=noise, field="MANIFEST")
    counts = executor.sample(workload.measured, workload.circuit_points(parameters),
                             shots=manifest.shots, seed=manifest.seeds.simulator)[0]
    differing = _differing(counts, record.counts)
    what = (f"the recorded noise section (sha256 {noise.sha256()[:12]})" if noise is not None
            else f"{name.device}'s noise model" if name.device else "no noise")
    return NoisyReplayResult(
        status="identical" if differing == 0 else "different", backend=record.backend,
        noise_sha256=None if noise is None else noise.sha256(),
        recorded_sha256=record.counts_sha256, replayed_sha256=counts_sha256(counts),
        differing_outcomes=differing,
        reason=f"sampled again on {record.backend} with {what}, the recorded seeds and shots")


def integrity_problems(manifest: RunManifest, path: Path) -> list[str]:
    """Where the manifest at ``path`` disagrees with its own hashes: the spec's SHA-256, the
    noise section's (and that it is the spec's), the ideal counts' SHA-256, and each circuit
    file found next to the manifest (its OpenQASM 3 text's SHA-256)."""
    problems: list[str] = []
    try:
        spec = spec_from_mapping(manifest.spec, source="manifest.spec")
    except SpecError as exc:
        problems.append(f"spec: not a valid spec ({exc.message.splitlines()[0]})")
    else:
        if spec.sha256() != manifest.spec_sha256:
            problems.append(f"spec_sha256: recorded {manifest.spec_sha256[:12]}, the recorded "
                            f"spec hashes to {spec.sha256()[:12]}")
        problems += _noise_problems(manifest, spec.gates.hardware.noise)
        problems += _hardware_problems(manifest, spec)
    counts = counts_sha256(manifest.ideal_counts)
    if counts != manifest.ideal_counts_sha256:
        problems.append(f"ideal_counts_sha256: recorded {manifest.ideal_counts_sha256[:12]}, "
                        f"the recorded counts hash to {counts[:12]}")
    for circuit in manifest.circuits:
        file = path.parent / circuit.qasm3_path if circuit.qasm3_path else None
        if file is not None and file.is_file():
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            if digest != circuit.sha256:
                problems.append(f"circuits.{circuit.role}.sha256: recorded "
                                f"{circuit.sha256[:12]}, {circuit.qasm3_path} hashes to "
                                f"{digest[:12]}")
    return problems


def _noise_problems(manifest: RunManifest, noise: NoiseSpec | None) -> list[str]:
    """The recorded noise section must be the spec's, and hash to ``noise_sha256``."""
    recorded = None if manifest.noise is None else NoiseSpec.model_validate(manifest.noise)
    if recorded != noise:
        return ["noise: the recorded noise section is not the spec's gates.hardware.noise"]
    digest = None if recorded is None else recorded.sha256()
    if digest != manifest.noise_sha256:
        return [f"noise_sha256: recorded {str(manifest.noise_sha256)[:12]}, the recorded noise "
                f"section hashes to {str(digest)[:12]}"]
    return []


def _hardware_problems(manifest: RunManifest, spec: ExperimentSpec) -> list[str]:
    """The hardware counts must hash to their ``counts_sha256`` and come from the spec's
    target (the only one that simulates the noise section) or one of its fallbacks."""
    record = manifest.hardware
    if record is None:
        return []
    problems: list[str] = []
    digest = counts_sha256(record.counts)
    if digest != record.counts_sha256:
        problems.append(f"hardware.counts_sha256: recorded {record.counts_sha256[:12]}, the "
                        f"recorded hardware counts hash to {digest[:12]}")
    policy = spec.gates.hardware
    if record.backend not in (policy.backend, *policy.fallback):
        problems.append(f"hardware.backend: {record.backend} is neither the spec's "
                        "gates.hardware.backend nor one of its fallbacks")
    elif record.noise_applied != (record.backend == policy.backend
                                  and policy.noise is not None):
        problems.append("hardware.noise_applied: the noise section applies exactly when the "
                        "spec's target, which has one, sampled the counts")
    return problems


def verify_integrity(manifest: RunManifest, path: Path) -> None:
    """Refuse a manifest whose recorded hashes do not match what it records.

    Raises:
        ReplayMismatchError: Naming each disagreement (``detail.integrity``).
    """
    problems = integrity_problems(manifest, path)
    if problems:
        raise ReplayMismatchError(
            f"{path}: the manifest does not match its own hashes, so it was edited after the "
            f"run; nothing was replayed: {'; '.join(problems)}",
            field="MANIFEST", detail={"manifest": str(path), "integrity": problems})


def _final_sha256(workload: Workload, parameters: np.ndarray) -> str | None:
    """The OpenQASM 3 hash of the measured circuit at ``parameters``; None if it cannot be
    written (a parameter so large that an angle overflows), so it differs from any record."""
    try:
        return qasm3_sha256(bind(workload, workload.measured, parameters))
    except (OverflowError, ValueError):
        return None


def verify_replay(report: ReplayReport) -> ReplayReport:
    """``report`` if the replay reproduced the run.

    Raises:
        ReplayMismatchError: Counts (ideal, or the hardware gate's noisy ones where they could
            be sampled again) or circuit differ; the report is the error's detail.
    """
    if report.reproduced:
        return report
    what = []
    if not report.identical:
        what.append(f"{report.differing_outcomes} outcomes' counts differ")
    if not report.circuit_identical:
        what.append("the final circuit differs")
    if report.noisy.status == "different":
        what.append(f"the hardware gate's noisy counts on {report.noisy.backend} differ in "
                    f"{report.noisy.differing_outcomes} outcomes (the noise model, or what it "
                    "ran on, is not the run's)")
    raise ReplayMismatchError(f"{report.manifest}: not reproduced: {'; '.join(what)}",
                              field="MANIFEST", detail=report.model_dump(mode="json"))
