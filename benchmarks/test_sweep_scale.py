"""Sweeps at scale: QAOA p=2 on the circulant graph C12(1,6) (12 qubits), exact expected cut
on ideal Aer (``specs/qaoa-c12-sweep.yaml``, random points), side by side with raw Aer.

* ``sweep-c12-1000``: 1,000 points five ways: the sweep's work inside a running flow (the
  ``sweep-points`` task, timed from within a flow whose records are open), the whole sweep
  flow (``flows.sweep.sweep_experiment`` under the session's Prefect harness: flow run,
  records, sweep, ``finish-sweep``), raw ``qiskit_aer.primitives.EstimatorV2`` with one PUB,
  one Prefect task per point (a ``@task`` called per point in a flow, the naive way) and one
  estimator call per point.
* ``sweep-cli-10000``: the whole ``qhybrid sweep`` command (a subprocess, against the running
  Prefect server of the harness) against a raw Aer script (a subprocess too) for the same
  10,000 points.
* ``sweep-scale``: ``qhybrid sweep`` at 1,000 (seven times), 10,000 (three times) and 100,000
  points, interleaved, each a subprocess under ``/usr/bin/time``: the median seconds per point
  of each size and its peak RSS; after each 1,000- and 10,000-point sweep, raw Aer on the same
  points as a gauge of the machine's speed. Only with ``BENCH_SWEEP_SCALE=1`` (about 10
  minutes).
* ``cli-help``: ``qhybrid --help``, cold (a new process each round), against ``python -c pass``.

A smoke run (``--benchmark-disable``) sweeps 100 points instead of 1,000 and 10,000, with the
same checks. Every benchmark records ``/proc/loadavg`` before and after in ``extra_info``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from qiskit import transpile
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2

from qhybrid.core import ExperimentSpec, RandomPointsSpec, RunOptions, Settings, load_spec
from qhybrid.experiments import Workload, build_workload, load_instance
from qhybrid_usecases import RunHandle, Services, SweepOutcome

SPEC = Path(__file__).resolve().parents[1] / "specs" / "qaoa-c12-sweep.yaml"
SMOKE_POINTS = 100
BIN = Path(sys.executable).parent
SCALE = os.environ.get("BENCH_SWEEP_SCALE") == "1"


def loadavg() -> str:
    """The first three fields of /proc/loadavg (1, 5 and 15 minute load averages)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@pytest.fixture
def load_noted(benchmark) -> Iterator[None]:
    """``extra_info["loadavg"]``: /proc/loadavg before and after the benchmark."""
    before = loadavg()
    yield
    benchmark.extra_info["loadavg"] = {"before": before, "after": loadavg()}


def c12_spec(count: int) -> ExperimentSpec:
    """specs/qaoa-c12-sweep.yaml with ``count`` random points."""
    spec = load_spec(SPEC)
    assert spec.sweep is not None
    points = spec.sweep.points.model_copy(update={"count": count})
    return spec.model_copy(update={"sweep": spec.sweep.model_copy(update={"points": points})})


@pytest.fixture(scope="module")
def workload(project_root: Path) -> Workload:
    spec = load_spec(SPEC)
    return build_workload(spec.family, load_instance(project_root / spec.dataset.path))


def circuit_points(workload: Workload, count: int) -> np.ndarray:
    """The spec's random points (the sweep's draw: one generator, seed 17), circuit order."""
    spec = load_spec(SPEC)
    assert spec.sweep is not None and isinstance(spec.sweep.points, RandomPointsSpec)
    seed = spec.sweep.points.seed
    low = np.array([b[0] for b in workload.bounds])
    high = np.array([b[1] for b in workload.bounds])
    family = np.random.default_rng(seed).uniform(low, high, size=(count, len(low)))
    return workload.circuit_points(family)


def raw_setup(workload: Workload) -> tuple[QuantumCircuit, SparsePauliOp, AerEstimatorV2]:
    isa = transpile(workload.ansatz, AerSimulator(), optimization_level=0)
    observable = workload.observables["expected_cut"]
    observable = observable.apply_layout(isa.layout) if isa.layout else observable
    return isa, observable, AerEstimatorV2(options={"run_options": {"seed_simulator": 12}})


def raw_one_pub(isa: QuantumCircuit, observable: SparsePauliOp, estimator: AerEstimatorV2,
                points: np.ndarray) -> np.ndarray:
    result = estimator.run([(isa, observable, points)], precision=0.0).result()
    return np.asarray(result[0].data.evs, dtype=float)


def raw_per_point(isa: QuantumCircuit, observable: SparsePauliOp, estimator: AerEstimatorV2,
                  points: np.ndarray) -> np.ndarray:
    return np.array([float(estimator.run([(isa, observable, p)], precision=0.0).result()[0]
                           .data.evs) for p in points])


@task(name="estimate-point", cache_policy=NO_CACHE)
def estimate_point(isa: QuantumCircuit, observable: SparsePauliOp,
                   estimator: AerEstimatorV2, point: np.ndarray) -> float:
    """One point's expected cut: what a task per point computes."""
    return float(estimator.run([(isa, observable, point)], precision=0.0).result()[0].data.evs)


@flow(name="sweep-task-per-point", persist_result=False)
def task_per_point(points: list[list[float]]) -> list[float]:
    """The naive sweep: the circuit transpiled, then a task called per point, one after
    another (the points as a JSON list, like any flow parameter)."""
    spec = load_spec(SPEC)
    workload = build_workload(spec.family, load_instance(Path(os.environ[
        "QHYBRID_PROJECT_ROOT"]) / spec.dataset.path))
    isa, observable, estimator = raw_setup(workload)
    return [estimate_point(isa, observable, estimator, np.asarray(p)) for p in points]


# --- sweep-c12-1000 --------------------------------------------------------------------------

GROUP = "sweep-c12-1000"


@pytest.fixture(scope="module")
def count(timed: bool) -> int:
    return 1000 if timed else SMOKE_POINTS


@pytest.fixture(scope="module")
def points(workload: Workload, count: int) -> np.ndarray:
    return circuit_points(workload, count)


@pytest.fixture(scope="module")
def reference(workload: Workload, points: np.ndarray) -> np.ndarray:
    return raw_one_pub(*raw_setup(workload), points)


def _check(values: np.ndarray, reference: np.ndarray) -> None:
    assert values.shape == reference.shape
    np.testing.assert_allclose(values, reference, atol=1e-10)
    assert values.min() >= 0.0 and values.max() <= 18.0  # a cut of 18 edges


@pytest.mark.benchmark(group=GROUP)
def test_c12_raw_estimator_one_pub(benchmark, load_noted, workload, points, reference):
    values = benchmark.pedantic(raw_one_pub, setup=lambda: ((*raw_setup(workload), points), {}),
                                rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info |= {"points": len(points)}
    _check(values, reference)


@pytest.mark.benchmark(group=GROUP)
def test_c12_whole_sweep_flow(benchmark, load_noted, prefect_harness, fresh_records, count,
                           reference, tmp_path):
    from flows.sweep import sweep_experiment

    spec = c12_spec(count)
    outputs: list[Path] = []

    def setup():
        # New records, created here (MLflow's schema, the state store's tables) as a project
        # that has run before has them: no round re-attaches or pays for creating a database.
        Services.open(fresh_records())
        outputs.append(tmp_path / f"sweep-{len(outputs)}.parquet")
        return (spec, RunOptions(), str(outputs[-1])), {}

    report = benchmark.pedantic(sweep_experiment, setup=setup, rounds=3, iterations=1,
                                warmup_rounds=1)
    benchmark.extra_info |= {"points": report.points, "chunks": report.chunks,
                             "chunk_size": report.chunk_size,
                             "chunk_size_reason": report.chunk_size_reason,
                             "sweep_seconds": report.seconds}
    table = pq.read_table(outputs[-1])
    _check(table.column("expected_cut").to_numpy(), reference)


@pytest.mark.benchmark(group=GROUP)
def test_c12_sweep_points_in_running_flow(benchmark, load_noted, prefect_harness, fresh_records,
                                          count, reference, tmp_path):
    """The sweep's own work inside a flow that is already running: the ``sweep-points`` task
    that ``flows.sweep.sweep_experiment`` calls, timed from within a running flow. Each round
    opens fresh records the way the flow does (``flow_services``, ``open-records``) and ends
    them with ``finish-sweep``, both untimed."""
    from prefect.runtime import flow_run

    from flows.sweep import sweep_experiment
    from tasks import flow_services, open_records
    from tasks.sweep import finish_sweep, sweep_points

    assert sweep_experiment.name == "sweep-experiment"  # the flow whose task this times
    spec = c12_spec(count)
    outcomes: list[SweepOutcome] = []

    def setup():
        fresh_records()
        services = flow_services()
        run = open_records(spec, RunOptions(), "run", flow_run.get_id(), services)
        return (run, services, str(tmp_path / f"sweep-{len(outcomes)}.parquet")), {}

    def sweep(run: RunHandle, services: Services, output: str) -> None:
        outcomes.append(sweep_points(run, services, output))

    def finish(run: RunHandle, services: Services, output: str) -> None:
        finish_sweep(run, services, outcomes[-1])

    @flow(name="sweep-points-benchmark", persist_result=False)
    def running_flow() -> None:
        benchmark.pedantic(sweep, setup=setup, teardown=finish, rounds=3, iterations=1,
                           warmup_rounds=1)

    running_flow()
    outcome = outcomes[-1]
    benchmark.extra_info |= {"points": outcome.points, "chunks": outcome.chunks,
                             "chunk_size": outcome.chunk.size,
                             "chunk_size_reason": outcome.chunk.reason,
                             "sweep_seconds": [o.seconds for o in outcomes]}
    _check(pq.read_table(outcome.output).column("expected_cut").to_numpy(), reference)


@pytest.mark.benchmark(group=GROUP)
def test_c12_task_per_point(benchmark, load_noted, prefect_harness, workload, points,
                            reference):
    values = benchmark.pedantic(task_per_point, args=(points.tolist(),), rounds=1,
                                iterations=1, warmup_rounds=0)
    benchmark.extra_info |= {"points": len(points), "task_runs": len(points)}
    _check(np.asarray(values), reference)


@pytest.mark.benchmark(group=GROUP)
def test_c12_raw_estimator_per_point(benchmark, load_noted, workload, points, reference):
    values = benchmark.pedantic(raw_per_point, setup=lambda: ((*raw_setup(workload), points), {}),
                                rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info |= {"points": len(points), "estimator_calls": len(points)}
    _check(values, reference)


# --- sweep-cli-10000 -------------------------------------------------------------------------

CLI_GROUP = "sweep-cli-10000"

RAW_SCRIPT = """
import sys
import numpy as np
from qiskit import qasm3, transpile
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import EstimatorV2
import yaml

spec = yaml.safe_load(open(sys.argv[1]))
count, out = int(sys.argv[2]), sys.argv[3]
circuit = qasm3.loads(open(spec["dataset"]["path"]).read())
names = [p.name for p in circuit.parameters]  # the sweep's family order: sorted by name
bounds = spec["family"]["bounds"]
low, high = np.array([bounds[n][0] for n in names]), np.array([bounds[n][1] for n in names])
points = np.random.default_rng(spec["sweep"]["points"]["seed"]).uniform(
    low, high, size=(count, len(names)))
observable = SparsePauliOp.from_list(
    [(label, c) for label, c in spec["family"]["observables"]["expected_cut"]])
isa = transpile(circuit, AerSimulator(), optimization_level=0)
estimator = EstimatorV2(options={"run_options": {"seed_simulator": 12}})
evs = estimator.run([(isa, observable, points)], precision=0.0).result()[0].data.evs
np.save(out, np.asarray(evs, dtype=float))
"""


def _spec_file(folder: Path, count: int) -> Path:
    path = folder / f"qaoa-c12-sweep-{count}.yaml"
    path.write_text(yaml.safe_dump(c12_spec(count).model_dump(mode="json"), sort_keys=False))
    return path


@pytest.fixture(scope="module")
def prefect_api_url(prefect_harness) -> str:
    """The URL of the harness's running Prefect server, for subprocesses."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "the Prefect harness set no API URL"
    return str(url)


def cli_env(records: Path, api_url: str) -> dict[str, str]:
    """The environment of a ``qhybrid sweep`` subprocess: records under ``records``, the
    running Prefect server, quiet logs."""
    from tests.conftest import record_env

    env = {k: v for k, v in os.environ.items() if not k.startswith(("QHYBRID_", "PREFECT_"))}
    return env | record_env(records) | {
        "PREFECT_API_URL": api_url, "PREFECT_HOME": str(records / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
        "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1"}


def fresh_cli_env(records: Path, api_url: str) -> dict[str, str]:
    """:func:`cli_env` on a new records folder whose databases exist already (created here, as
    in a project that has run before), so the command pays for none."""
    records.mkdir()
    env = cli_env(records, api_url)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            if key.startswith("QHYBRID_"):
                patch.setenv(key, value)
        Services.open(Settings())
    return env


def run_cli_sweep(spec: Path, out: Path, env: dict[str, str], *,
                  timer: bool = False) -> tuple[dict[str, object], str]:
    """``qhybrid sweep SPEC --out OUT --json``; its report and stderr. With ``timer``, under
    ``/usr/bin/time -v`` (its report at the end of stderr)."""
    command = [str(BIN / "qhybrid"), "sweep", str(spec), "--out", str(out), "--json"]
    if timer:
        command = ["/usr/bin/time", "-v", *command]
    done = subprocess.run(command, env=env, cwd=spec.parent, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, f"qhybrid sweep exited {done.returncode}:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout), done.stderr


@pytest.fixture(scope="module")
def cli_count(timed: bool) -> int:
    return 10_000 if timed else SMOKE_POINTS


@pytest.fixture(scope="module")
def cli_reference(workload: Workload, cli_count: int) -> np.ndarray:
    return raw_one_pub(*raw_setup(workload), circuit_points(workload, cli_count))


@pytest.mark.benchmark(group=CLI_GROUP)
def test_cli_raw_aer_script(benchmark, load_noted, project_root, cli_count, cli_reference,
                            tmp_path):
    spec = _spec_file(tmp_path, cli_count)
    out = tmp_path / "raw.npy"
    command = [sys.executable, "-c", RAW_SCRIPT, str(spec), str(cli_count), str(out)]

    def run() -> None:
        subprocess.run(command, cwd=project_root, check=True)

    benchmark.pedantic(run, rounds=2, iterations=1, warmup_rounds=0)
    benchmark.extra_info |= {"points": cli_count}
    np.testing.assert_allclose(np.load(out), cli_reference, atol=1e-10)


@pytest.mark.benchmark(group=CLI_GROUP)
def test_cli_qhybrid_sweep(benchmark, load_noted, prefect_api_url, cli_count, cli_reference,
                           tmp_path):
    spec = _spec_file(tmp_path, cli_count)
    rounds: list[tuple[Path, dict[str, str]]] = []

    def setup():
        records = tmp_path / f"records-{len(rounds)}"
        rounds.append((records / "sweep.parquet", fresh_cli_env(records, prefect_api_url)))
        return (spec, *rounds[-1]), {}

    report, _ = benchmark.pedantic(run_cli_sweep, setup=setup, rounds=2, iterations=1,
                                   warmup_rounds=0)
    benchmark.extra_info |= {"points": report["points"], "chunks": report["chunks"],
                             "chunk_size": report["chunk_size"],
                             "sweep_seconds": report["seconds"]}
    table = pq.read_table(rounds[-1][0])
    np.testing.assert_allclose(table.column("expected_cut").to_numpy(), cli_reference,
                               atol=1e-10)


# --- sweep-scale (BENCH_SWEEP_SCALE=1) -------------------------------------------------------

SCALE_GROUP = "sweep-scale"
SIZES = (1_000, 10_000, 100_000)
# Each size measured more than once, interleaved, the large one in the middle: a burst of other
# work on this shared machine then weighs on one sample of a short size, not on its median.
SCHEDULE = (1_000, 10_000, 1_000, 1_000, 100_000, 1_000, 10_000, 1_000, 1_000, 10_000, 1_000)
# Raw Aer (one PUB, in this process) on the same points right after each sweep of these sizes:
# the machine's own speed at that moment (one 100,000-point PUB would take minutes more).
GAUGED = (1_000, 10_000)


def _time_v(stderr: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) from ``/usr/bin/time -v``."""
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    assert wall and rss, f"no /usr/bin/time report in:\n{stderr[-2000:]}"
    seconds = 0.0
    for part in wall.group(1).split(":"):
        seconds = seconds * 60 + float(part)
    return seconds, int(rss.group(1))


@pytest.mark.skipif(not SCALE, reason="BENCH_SWEEP_SCALE=1 runs it (about 10 minutes)")
@pytest.mark.benchmark(group=SCALE_GROUP)
def test_cli_sweep_at_three_sizes(benchmark, load_noted, prefect_api_url, workload, tmp_path):
    samples: dict[int, list[dict[str, float | int | str]]] = {size: [] for size in SIZES}
    raw = raw_setup(workload)

    def run_all() -> None:
        for n, size in enumerate(SCHEDULE):
            records = tmp_path / f"records-{n}-{size}"
            env = fresh_cli_env(records, prefect_api_url)
            before = loadavg()
            report, stderr = run_cli_sweep(_spec_file(tmp_path, size), records / "s.parquet",
                                           env, timer=True)
            wall, rss = _time_v(stderr)
            assert report["points"] == size
            sweep_s = float(str(report["seconds"]))
            sample: dict[str, float | int | str] = {
                "order": n, "wall_s": wall, "sweep_s": sweep_s,
                "sweep_ms_per_point": 1000 * sweep_s / size, "peak_rss_mib": rss / 1024,
                "chunks": str(report["chunks"]), "loadavg": f"{before} -> {loadavg()}"}
            if size in GAUGED:
                points = circuit_points(workload, size)
                start = time.perf_counter()
                raw_one_pub(*raw, points)
                sample["raw_ms_per_point"] = 1000 * (time.perf_counter() - start) / size
            samples[size].append(sample)

    benchmark.pedantic(run_all, rounds=1, iterations=1, warmup_rounds=0)

    def median(size: int, key: str) -> float:
        return float(np.median([float(run[key]) for run in samples[size]]))

    per_point = {size: median(size, "sweep_ms_per_point") for size in SIZES}
    peak = {size: max(float(run["peak_rss_mib"]) for run in samples[size]) for size in SIZES}
    benchmark.extra_info["sizes"] = {
        str(size): {"sweep_ms_per_point": per_point[size], "peak_rss_mib": peak[size],
                    **({"raw_ms_per_point": median(size, "raw_ms_per_point")}
                       if size in GAUGED else {}),
                    "samples": samples[size]} for size in SIZES}
    benchmark.extra_info["sweep_ms_per_point_spread"] = (max(per_point.values())
                                                         / min(per_point.values()) - 1)
    benchmark.extra_info["rss_100k_over_10k"] = peak[100_000] / peak[10_000]


# --- cli-help ---------------------------------------------------------------------------------

HELP_GROUP = "cli-help"


def _command(args: list[str]) -> Callable[[], None]:
    def run() -> None:
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
    return run


@pytest.mark.benchmark(group=HELP_GROUP)
def test_cli_help_cold(benchmark, load_noted):
    out = subprocess.run([str(BIN / "qhybrid"), "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "sweep" in out and "promote" in out
    benchmark.pedantic(_command([str(BIN / "qhybrid"), "--help"]), rounds=5, iterations=1,
                       warmup_rounds=1)


@pytest.mark.benchmark(group=HELP_GROUP)
def test_cli_python_startup(benchmark, load_noted):
    benchmark.pedantic(_command([sys.executable, "-c", "pass"]), rounds=5, iterations=1,
                       warmup_rounds=1)

