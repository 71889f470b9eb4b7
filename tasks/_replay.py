"""Replay the simulator part of a recorded run and compare counts bit for bit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backends import open_executor
from qhybrid.core import DataError, RunManifest, Settings, spec_from_mapping
from qhybrid.experiments import build_workload, load_instance
from qhybrid.experiments._serialise import bind, qasm3_sha256
from registry import file_md5
from tasks._work import counts_sha256


@dataclass(frozen=True)
class ReplayResult:
    """What a replay found.

    Attributes:
        identical: The replayed counts equal the recorded ones exactly.
        circuit_identical: The final circuit's OpenQASM 3 hash equals the recorded one.
        recorded_sha256: Hash of the recorded counts.
        replayed_sha256: Hash of the replayed counts.
        differing_outcomes: Bitstrings whose counts differ.
    """

    identical: bool
    circuit_identical: bool
    recorded_sha256: str
    replayed_sha256: str
    differing_outcomes: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return self.__dict__.copy()


def replay(manifest: RunManifest, settings: Settings) -> ReplayResult:
    """Rebuild the final circuit from the manifest and sample it on ideal Aer with its seed.

    Raises:
        DataError: The input data is missing or is not the data the run used.
    """
    spec = spec_from_mapping(manifest.spec, source="manifest.spec")
    for path, pin in manifest.data.items():
        full = settings.project_root / path
        if not full.is_file():
            raise DataError(f"{path} is missing; run `dvc pull` or `dvc repro`", field="data")
        if file_md5(full) != pin["md5"]:
            raise DataError(f"{path} differs from the data this run used (md5 {pin['md5']})",
                            field="data")
    instance = load_instance(settings.project_root / spec.dataset.path)
    workload = build_workload(spec.family, instance)
    parameters = np.array(manifest.parameters, dtype=float)
    # A fresh in-memory store: a replay must execute again, never re-attach to the run's jobs.
    backend = open_executor("aer", settings.model_copy(update={"faults": ""}),
                            transpiler_seed=manifest.seeds["transpiler"])
    counts = backend.sample(workload.measured, workload.circuit_points(parameters),
                            shots=manifest.shots, seed=manifest.seeds["simulator"])[0]
    recorded = manifest.ideal_counts
    final = next((c for c in manifest.circuits if c.role == "final"), None)
    circuit_same = final is not None and qasm3_sha256(bind(workload, workload.measured, parameters)) == final.sha256
    differing = sum(1 for k in set(counts) | set(recorded) if counts.get(k) != recorded.get(k))
    return ReplayResult(
        identical=differing == 0, circuit_identical=circuit_same,
        recorded_sha256=manifest.ideal_counts_sha256, replayed_sha256=counts_sha256(counts),
        differing_outcomes=differing,
    )
