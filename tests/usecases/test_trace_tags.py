"""The trace id and job id a run's options carry reach every provider job its gates submit."""

from __future__ import annotations

import shutil
from pathlib import Path

import qhybrid_usecases as usecases
from backends import StateStore
from qhybrid.core import RunOptions, Settings, load_spec
from qhybrid_usecases import Services

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
JOB = "0b5f6c2e-9a51-4d1e-8f43-2c7d9e1a6b30"


def test_the_gates_tag_every_provider_job_with_the_request_behind_the_run(
        settings: Settings, repo: Path, runtime_job_tags: list[list[str]]) -> None:
    spec = load_spec(repo / "specs" / "vqe-h2.yaml")  # ideal on aer, hardware on ibm:fake_manila
    services = Services.open(settings)
    run = usecases.open_run(spec, RunOptions(trace_id=TRACE, job_id=JOB), services,
                            kind="promotion", flow_run_id=None)
    try:
        ideal = usecases.ideal_gate(run, services)
        assert ideal.trial is not None
        usecases.hardware_gate(run, services, ideal.trial)
    finally:
        shutil.rmtree(run.scratch, ignore_errors=True)

    expected = ("qhybrid", f"trace:{TRACE}", f"job:{JOB}")
    # The hardware gate's jobs, as qiskit-ibm-runtime was asked to run them.
    assert runtime_job_tags and all(tags == list(expected) for tags in runtime_job_tags)
    # Every job of both gates (the ideal gate's on Aer too), as the ledger recorded it.
    store = StateStore(settings.state_store_url)
    rows = [store.ledger_by_job(job_id) for job_id in services.log.job_ids]
    assert len(rows) > 1 and {row.tags for row in rows if row is not None} == {expected}
    assert None not in rows
