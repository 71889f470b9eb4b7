"""A sweep through the whole service, as a client would run one: submit it over HTTP, follow it
to its end, read its result and download its Parquet file; every value checked against the
report and against statevectors computed here, without the experiment's own code."""

from __future__ import annotations

import hashlib
import io
import itertools
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp, Statevector

from qhybrid.core import JobResult
from tests.service._harness import REPO, Service, flow_runs, submit

pytestmark = pytest.mark.slow

GAMMAS = np.linspace(0.0, np.pi, 4)
BETAS = np.linspace(0.0, np.pi / 2, 4)
GRAPH = json.loads((REPO / "data" / "maxcut_3reg_6.json").read_text())
EDGES = [(int(i), int(j), float(w)) for i, j, w in GRAPH["edges"]]
NODES = int(GRAPH["num_nodes"])


def _spec() -> dict[str, object]:
    """specs/qaoa-sweep.yaml on a 4 x 4 grid, in four chunks after a four-point canary."""
    spec = yaml.safe_load((REPO / "specs" / "qaoa-sweep.yaml").read_text())
    spec["sweep"] = {"points": {"kind": "grid", "grid": {
        "gamma[0]": {"start": 0.0, "stop": float(np.pi), "num": 4},
        "beta[0]": {"start": 0.0, "stop": float(np.pi / 2), "num": 4}}},
        "chunk_size": 4, "canary": 4}
    return dict(spec)


def _cut(bits: str) -> float:
    """The cut weight of an assignment (qiskit's bit order: qubit 0 is the last character)."""
    return sum(w for i, j, w in EDGES if bits[-1 - i] != bits[-1 - j])


def _exact(gamma: float, beta: float) -> tuple[float, float]:
    """Expected cut and probability of a maximum cut of QAOA p=1 at (gamma, beta):
    exp(-i beta sum X) exp(-i gamma C) |+>^n, C = sum_ij w_ij (1 - Z_i Z_j) / 2."""
    qc = QuantumCircuit(NODES)
    qc.h(range(NODES))
    for i, j, w in EDGES:
        qc.rzz(-gamma * w, i, j)  # exp(+i gamma w Z Z / 2): exp(-i gamma C) up to a phase
    qc.rx(2 * beta, range(NODES))
    state = Statevector(qc)
    cut = SparsePauliOp.from_sparse_list(
        [("", [], sum(w for *_, w in EDGES) / 2)]
        + [("ZZ", [i, j], -w / 2) for i, j, w in EDGES], NODES)
    cuts = {format(z, f"0{NODES}b"): _cut(format(z, f"0{NODES}b")) for z in range(2**NODES)}
    best = max(cuts.values())
    probabilities = state.probabilities_dict()
    optimum = sum(p for bits, p in probabilities.items() if cuts[bits] == best)
    return float(state.expectation_value(cut).real), float(optimum)


def test_a_sweep_job_runs_as_its_own_flow_run_and_its_parquet_file_downloads(
        service: Service) -> None:
    body = {"kind": "sweep", "spec": _spec(), "backend": "aer", "sla": "batch-research",
            "idempotency_key": "sweep-4x4"}
    job = submit(service, body)
    with service.client() as client:
        again = client.post("/v1/jobs", json=body)
        refused = client.post("/v1/jobs", json={**body, "spec_path": "specs/vqe-h2.yaml",
                                                "spec": None, "idempotency_key": None})
    assert again.status_code == 202 and again.json()["id"] == job["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "spec.sweep"

    ended = service.wait_ended(job["id"])
    assert ended["status"] == "succeeded", ended
    walked = [t["status"] for t in ended["transitions"]]
    assert [s for i, s in enumerate(walked) if i == 0 or walked[i - 1] != s] == [
        "queued", "validating", "running", "post-processing", "succeeded"], walked
    assert "sweep of 16 points" in [t["sub_status"] for t in ended["transitions"]]
    with service.client() as client:
        result = JobResult.model_validate(client.get(f"/v1/jobs/{job['id']}/result").json())
        assert result.parquet is not None
        download = client.get(result.parquet.href)
        stranger = client.get(result.parquet.href, headers={"X-Qhybrid-Client": "stranger"})
    assert download.status_code == 200, download.text
    assert stranger.status_code == 404
    report = result.sweep
    assert report is not None and result.kind == "sweep" and result.backend == "aer"
    assert (report.points, report.chunks, report.canary_points, report.exact) == (16, 4, 4, True)
    assert ended["mlflow_run_id"] == report.mlflow_run_id
    assert download.headers["content-type"] == "application/vnd.apache.parquet"
    assert download.headers["etag"] == f'"{hashlib.sha256(download.content).hexdigest()}"'
    assert (result.parquet.bytes, result.parquet.sha256) == (
        len(download.content), hashlib.sha256(download.content).hexdigest())

    table = pq.read_table(io.BytesIO(download.content))
    assert table.column_names == list(report.columns)
    assert table.num_rows == report.points
    assert table.column("point").to_pylist() == list(range(16))
    assert table.column("chunk").to_pylist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    grid = list(itertools.product(GAMMAS.tolist(), BETAS.tolist()))  # beta varies fastest
    assert list(zip(table.column("gamma[0]").to_pylist(), table.column("beta[0]").to_pylist(),
                    strict=True)) == grid
    assert set(table.column("backend").to_pylist()) == {"aer"}
    for index in (0, 5, 10, 15):  # one point of each chunk
        cut, optimum = _exact(*grid[index])
        assert table.column("expected_cut")[index].as_py() == pytest.approx(cut, abs=1e-9)
        assert table.column("optimum_probability")[index].as_py() == pytest.approx(
            optimum, abs=1e-9)
        assert table.column("expected_cut.stderr")[index].as_py() == 0.0

    # One flow run of its own, a child of the job's serve-jobs flow run, tagged like the others.
    runs = [r for r in flow_runs(service) if f"job:{job['id']}" in r.tags]
    served = [r for r in runs if r.work_queue_name is not None]
    children = [r for r in runs if r.work_queue_name is None]
    assert [str(r.id) for r in served] == [ended["prefect_flow_run_id"]]
    assert served[0].work_queue_name == "batch-research"
    assert [str(r.id) for r in children] == [report.prefect_flow_run_id], runs
    assert children[0].parent_task_run_id is not None
    assert {f"trace:{job['trace_id']}", "sla:batch-research", "kind:sweep",
            "experiment:qaoa-sweep-3reg-6", "backend:aer"} <= set(children[0].tags)
