"""Jobs through the whole service: accept-to-start latency per SLA class, and jobs completed
per second for small `evaluate` jobs on Aer, batched by the dispatcher against one flow run per
job (the naive design), side by side.

It starts `qhybrid serve` and promotes an experiment first (about two minutes), so it runs only
when asked: `BENCH_SERVICE=1 make bench` (or `BENCH_SERVICE=1 pytest benchmarks/
test_service_throughput.py -o addopts="" --benchmark-enable`). `BENCH_SERVICE_JOBS` sets the jobs
per path (default 40).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.service._harness import Service, running_service, submit

pytestmark = pytest.mark.skipif(os.environ.get("BENCH_SERVICE") != "1",
                                reason="starts the whole service: set BENCH_SERVICE=1")
JOBS = int(os.environ.get("BENCH_SERVICE_JOBS", "40"))
MODEL = "qaoa-maxcut-small@champion"
# near-real-time serves one job per flow run here: the naive design, on the same kind of worker.
POLICIES = {"near-real-time": {"max_batch": 1, "window_seconds": 0},
            "batch-research": {"window_seconds": 5}}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("bench-service"),
                         QHYBRID_SLA_POLICIES=json.dumps(POLICIES)) as svc:
        promoted = submit(svc, {"kind": "promote", "spec_path": "specs/qaoa-maxcut-small.yaml",
                                "sla": "interactive"})
        assert svc.wait_ended(promoted["id"], timeout=600)["status"] == "succeeded"
        yield svc


def _at(stamp: str) -> float:
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=dt.UTC).timestamp()


def _run_jobs(svc: Service, sla: str, n: int) -> dict[str, Any]:
    started = time.perf_counter()
    ids = [submit(svc, {"kind": "evaluate", "model": MODEL, "sla": sla,
                        "parameter_sets": [[0.1 + 0.01 * i, 0.2]]})["id"] for i in range(n)]
    ended = [svc.wait_ended(i, timeout=1800) for i in ids]
    wall = time.perf_counter() - started
    assert {j["status"] for j in ended} == {"succeeded"}, [j["error"] for j in ended]
    queue = sorted(_at(next(t["at"] for t in j["transitions"] if t["status"] == "validating"))
                   - _at(j["created_at"]) for j in ended)
    return {"sla": sla, "jobs": n, "wall_seconds": round(wall, 2),
            "jobs_per_second": round(n / wall, 3),
            "flow_runs": len({j["prefect_flow_run_id"] for j in ended}),
            "accept_to_start_p50": round(statistics.median(queue), 2),
            "accept_to_start_p95": round(queue[min(len(queue) - 1, int(0.95 * len(queue)))], 2)}


@pytest.mark.benchmark(group="service-throughput")
@pytest.mark.parametrize("sla", ["interactive", "near-real-time", "batch-research"])
def test_evaluate_jobs_through_the_service(benchmark: Any, service: Service, sla: str,
                                           tmp_path: Path) -> None:
    """Interactive and batch-research batch jobs into shared flow runs; near-real-time is set
    to one flow run per job, the naive design."""
    outcome = benchmark.pedantic(_run_jobs, args=(service, sla, JOBS), rounds=1, iterations=1)
    benchmark.extra_info.update(outcome)
    print(json.dumps(outcome))
