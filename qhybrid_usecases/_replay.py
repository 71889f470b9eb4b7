"""Replay the simulator part of a recorded run and compare counts and circuit bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from backends import open_executor
from qhybrid.core import (
    DataError,
    ReplayMismatchError,
    ReplayReport,
    Settings,
    spec_from_mapping,
)
from qhybrid.experiments import bind, build_workload, load_instance, qasm3_sha256
from qhybrid_usecases._records import counts_sha256
from registry import file_md5, read_manifest


def replay(path: Path, settings: Settings) -> ReplayReport:
    """Rebuild the final circuit from the manifest at ``path`` and sample it on ideal Aer with
    its recorded seeds and shots.

    Raises:
        InvalidInputError: The manifest is missing or invalid.
        DataError: The input data is missing or is not the data the run used.
    """
    manifest = read_manifest(path)
    spec = spec_from_mapping(manifest.spec, source="manifest.spec")
    for rel, pin in manifest.data.items():
        full = settings.project_root / rel
        if not full.is_file():
            raise DataError(f"{rel} is missing; run `dvc pull` or `dvc repro`", field="data")
        if file_md5(full) != pin.md5:
            raise DataError(f"{rel} differs from the data this run used (md5 {pin.md5})",
                            field="data")
    workload = build_workload(spec.family, load_instance(settings.project_root / spec.dataset.path))
    parameters = np.array(manifest.parameters, dtype=float)
    # A fresh in-memory store and no faults: a replay executes again, never re-attaches.
    backend = open_executor("aer", settings.model_copy(update={"faults": ""}),
                            transpiler_seed=manifest.seeds.transpiler)
    counts = backend.sample(workload.measured, workload.circuit_points(parameters),
                            shots=manifest.shots, seed=manifest.seeds.simulator)[0]
    recorded = manifest.ideal_counts
    final = next((c for c in manifest.circuits if c.role == "final"), None)
    circuit_same = final is not None and qasm3_sha256(
        bind(workload, workload.measured, parameters)) == final.sha256
    differing = sum(1 for k in set(counts) | set(recorded) if counts.get(k) != recorded.get(k))
    return ReplayReport(
        manifest=str(path), mlflow_run_id=manifest.mlflow_run_id, identical=differing == 0,
        circuit_identical=circuit_same, recorded_sha256=manifest.ideal_counts_sha256,
        replayed_sha256=counts_sha256(counts), differing_outcomes=differing,
    )


def verify_replay(report: ReplayReport) -> ReplayReport:
    """``report`` if the replay reproduced the run.

    Raises:
        ReplayMismatchError: Counts or circuit differ; the report is the error's detail.
    """
    if report.reproduced:
        return report
    what = []
    if not report.identical:
        what.append(f"{report.differing_outcomes} outcomes' counts differ")
    if not report.circuit_identical:
        what.append("the final circuit differs")
    raise ReplayMismatchError(f"{report.manifest}: not reproduced: {'; '.join(what)}",
                              field="MANIFEST", detail=report.model_dump(mode="json"))
