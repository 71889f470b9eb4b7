"""Where the bundled promotion's time goes: compute against orchestration and tracking.

Runs ``flows.promote_experiment(specs/qaoa-maxcut.yaml)`` ``--rounds`` times in one process,
against the Prefect server that ``PREFECT_API_URL`` names (start one first), each round on a
new records folder (MLflow SQLite store, artifacts, manifests, promotion log, state store)
under ``--records``. The imports are timed first. Round 0 is the first flow of the process
(first use of every library, and both new databases created inside the flow, as on a first
``make demo``); later rounds are warm (the same process; their new databases are created
before the round's clock starts, as ``fresh_store`` in test_promotion.py does).

Every round is split into phases by wall-clock timers wrapped around the calls that mark
them (:func:`instrument`), on the main thread, exclusively: a call's time less the time of
timed calls inside it. Compute is the time in ``Submitter.attempt`` (the provider submission:
the executor's key, ledger and lease, the backend's run and its result) and in
``qhybrid.experiments``' ``optimise_and_measure``, ``measure`` and ``run_baselines`` less the
executor calls inside them (optimiser, analysis, baselines). Everything else is orchestration
and tracking; what no timer claims (the flow run's start and end, result persistence) is the
last row.

Usage (see docs/benchmarks.md, "Where a promotion's time goes")::

    PREFECT_API_URL=http://127.0.0.1:PORT/api python benchmarks/profile_promotion.py --rounds 3
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib.util
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "qaoa-maxcut.yaml"

PhaseOf = str | Callable[[tuple[object, ...]], str]


class Phases:
    """Exclusive wall time per phase on the main thread: a wrapped call's time, less the
    time of wrapped calls inside it, goes to its phase (the flow's tasks run on the main
    thread; Prefect's own threads only serve it)."""

    def __init__(self) -> None:
        self.seconds: collections.defaultdict[str, float] = collections.defaultdict(float)
        self.calls: collections.Counter[str] = collections.Counter()
        self._stack: list[float] = []

    def wrap(self, phase: PhaseOf, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn``, timed into ``phase`` (a name, or a function of the call's arguments)."""

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not threading.main_thread():
                return fn(*args, **kwargs)
            name = phase(args) if callable(phase) else phase
            self._stack.append(0.0)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.seconds[name] += elapsed - self._stack.pop()
                self.calls[name] += 1
                if self._stack:
                    self._stack[-1] += elapsed

        return timed

    def patch_function(self, phase: PhaseOf, fn: Callable[..., Any]) -> None:
        """Replace ``fn`` in every loaded module that bound it (``from x import fn``)."""
        timed = self.wrap(phase, fn)
        for module in list(sys.modules.values()):
            names = getattr(module, "__dict__", {})
            for key, value in list(names.items()):
                if value is fn:
                    setattr(module, key, timed)

    def patch_method(self, phase: PhaseOf, cls: type, name: str) -> None:
        """Time ``cls.name`` for every instance."""
        setattr(cls, name, self.wrap(phase, getattr(cls, name)))

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


COMPUTE = ("quantum: provider submissions (Submitter.attempt)",
           "classical: optimiser, analysis, baselines")


def instrument(*, by_call: bool = False) -> Phases:
    """Wrap the calls that mark each phase (the flow's modules imported first)."""
    import prefect.artifacts
    import prefect.concurrency._sync
    import prefect.tasks

    import backends._submit as submit
    import flows  # noqa: F401  (binds every name the flow uses)
    import qhybrid.experiments as experiments
    import qhybrid_usecases as usecases
    import registry
    import registry._plots as plots
    import tasks.records
    import tasks.submission
    from qhybrid_usecases import RunHandle

    phases = Phases()
    phases.patch_method(COMPUTE[0], submit.Submitter, "attempt")
    phases.patch_method("executor around submissions (submit-job task runs' callers)",
                        submit.BackendExecutor, "run")
    for fn in ("optimise_and_measure", "measure", "run_baselines"):
        phases.patch_function(COMPUTE[1], getattr(experiments, fn))
    phases.patch_method(lambda a: "Prefect task engine: submit-job"
                        if getattr(a[0], "name", "") == "submit-job"
                        else "Prefect task engine: gate and record tasks",
                        prefect.tasks.Task, "__call__")
    phases.patch_function("Prefect task engine: tag concurrency-slot requests",
                          prefect.concurrency._sync.acquire_concurrency_slots_with_lease)
    phases.patch_function("Prefect cancellation checks", tasks.submission.raise_if_cancelled)
    if hasattr(tasks.submission, "CancelWatch"):  # each check asked Prefect before 2026-12-02
        phases.patch_method("Prefect cancellation checks", tasks.submission.CancelWatch,
                            "check")
    if hasattr(tasks.submission, "has_concurrency_limit"):  # not before 2026-12-01
        phases.patch_function("Prefect concurrency-limit lookups (once per backend)",
                              tasks.submission.has_concurrency_limit)
    phases.patch_function("Prefect flow-run tags", tasks.records.tag_flow_run)
    for fn in ("create_markdown_artifact", "create_table_artifact"):
        # Published from a thread since 2026-12-03 (not timed there) ...
        phases.patch_function("Prefect artifacts", getattr(prefect.artifacts, fn))
    if importlib.util.find_spec("tasks.artifacts") is not None:
        import tasks.artifacts

        # ... and the flow's wait for them is.
        phases.patch_function("Prefect artifacts", tasks.artifacts.settle)
    phases.patch_method("MLflow: open the stores", registry.Tracker, "__init__")
    for name, member in vars(registry.Tracker).items():
        if callable(member) and not name.startswith("_") and name != "for_settings":
            phases.patch_method(f"MLflow: {name}" if by_call else "MLflow: calls",
                                registry.Tracker, name)
    for name in plots.__all__ if hasattr(plots, "__all__") else dir(plots):
        if name.endswith("_png"):
            # Drawn in the drawing process (or the plot thread), these are not timed ...
            phases.patch_function("plots (matplotlib)", getattr(plots, name))
    # ... but the run's wait for that thread is.
    if hasattr(usecases, "PlotDrawer"):  # plots drawn in the caller's thread before 2026-12-01
        phases.patch_method("waiting for the plot thread", usecases.PlotDrawer, "wait")
    phases.patch_function("model packaging (pyfunc)", registry.log_model)
    for writer in (experiments.write_circuit, registry.write_manifest, registry.share_manifest):
        phases.patch_function("circuits and manifest files", writer)
    phases.patch_method("workload rebuilt from pinned data", RunHandle, "workload")
    phases.patch_method("executor opened (backend, device, transpiled circuits)",
                        usecases.Services, "executor")
    # Last, so that the tasks' wrappers call the timed use cases: their own time (verdicts,
    # seeds, progress, the decision and its apply step) is no Prefect time.
    for name in ("open_run", "ideal_gate", "statistical_gate", "hardware_gate", "baseline_gate",
                 "decide_promotion", "record_evidence", "apply_promotion", "finish_run"):
        phases.patch_function("use cases' own work (verdicts, seeds, progress, decision)",
                              getattr(usecases, name))
    return phases


def table(phases: Phases, wall: float) -> str:
    """The phases of one round as markdown rows, the unattributed rest last."""
    rows = ["| phase | share | seconds | % of the round | calls |", "|---|---|---|---|---|"]
    rest = wall - sum(phases.seconds.values())
    items = [*phases.seconds.items(), ("Prefect flow run and the rest (flow start and end, "
                                       "persisted result)", rest)]
    for name, seconds in sorted(items, key=lambda kv: -kv[1]):
        share = "compute" if name in COMPUTE else "orchestration"
        rows.append(f"| {name} | {share} | {seconds:.2f} | {100 * seconds / wall:.1f} | "
                    f"{phases.calls.get(name, '')} |")
    compute = sum(phases.seconds[name] for name in COMPUTE)
    rows.append(f"| **compute** | | **{compute:.2f}** | **{100 * compute / wall:.1f}** | |")
    rows.append(f"| **orchestration and tracking** | | **{wall - compute:.2f}** | "
                f"**{100 * (wall - compute) / wall:.1f}** | |")
    return "\n".join(rows)


def _point_records(folder: Path) -> None:
    from tests.conftest import record_env  # one definition of the records environment

    folder.mkdir(parents=True)
    os.environ.update(record_env(folder))


def _cold_round() -> float:
    start = time.perf_counter()
    from flows import promote_experiment
    from qhybrid.core import RunReport, load_spec

    report = promote_experiment(load_spec(SPEC))
    assert isinstance(report, RunReport) and report.decision is not None, report
    return time.perf_counter() - start


def _create_stores() -> None:
    """A warm round's set-up (not sampled as part of it): both new databases created, as
    ``fresh_store`` in test_promotion.py does."""
    from qhybrid.core import Settings
    from qhybrid_usecases import Services

    Services.open(Settings())


def _warm_round() -> float:
    from flows import promote_experiment
    from qhybrid.core import RunReport, load_spec

    spec = load_spec(SPEC)
    start = time.perf_counter()
    report = promote_experiment(spec)
    assert isinstance(report, RunReport) and report.decision is not None, report
    return time.perf_counter() - start


def main() -> None:
    """Run the rounds and print each one's wall time and phases, then the warm rounds'
    orchestration and tracking shares."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--records", type=Path, default=None)
    parser.add_argument("--mlflow-by-call", action="store_true",
                        help="one row per Tracker method instead of one for all MLflow calls")
    parser.add_argument("--without-mlflow-writes", action="store_true",
                        help="a what-if, not a promotion to keep: skip MLflow's writes but the "
                             "tags the steps read back (the manifest's), to bound what taking "
                             "them off the flow's thread could save")
    parser.add_argument("--heartbeats", action="store_true",
                        help="send Prefect flow heartbeats, as a worker's flow runs do")
    args = parser.parse_args()
    if not os.environ.get("PREFECT_API_URL"):
        sys.exit("set PREFECT_API_URL to a running Prefect server (prefect server start)")
    records = args.records or Path(tempfile.mkdtemp(prefix="qhybrid-profile-"))
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    # As in `qhybrid promote`: the command's own flows send no heartbeats unless asked for
    # (Prefect joins the heartbeat thread, sleeping in one-second steps, at each flow's end).
    beats = {} if args.heartbeats else {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    with temporary_settings(updates=beats):
        _rounds(args.rounds, records, by_call=args.mlflow_by_call,
                skip_writes=args.without_mlflow_writes)


def _skip_mlflow_writes() -> None:
    """MLflow's writes skipped, but for the tags a later step reads back (``qhybrid.*``:
    the manifest, the evidence): the records are incomplete, the flow runs to its end."""
    import registry

    log_values = registry.Tracker.log_values

    def tags_only(self: registry.Tracker, run_id: str, **values: Any) -> None:
        tags = {k: v for k, v in (values.get("tags") or {}).items() if k.startswith("qhybrid.")}
        if tags:
            log_values(self, run_id, tags=tags)

    def skipped(*_args: Any, **_kwargs: Any) -> None:
        return None

    registry.Tracker.log_values = tags_only  # type: ignore[method-assign]
    for name in ("log_dict", "log_datasets", "end_run", "set_alias"):
        setattr(registry.Tracker, name, skipped)


def _rounds(rounds: int, records: Path, *, by_call: bool, skip_writes: bool = False) -> None:
    start = time.perf_counter()
    phases = instrument(by_call=by_call)
    if skip_writes:
        _skip_mlflow_writes()
    print(f"imports (flows, qhybrid, Prefect, MLflow, Qiskit): "
          f"{time.perf_counter() - start:.2f} s", flush=True)
    shares = []
    for i in range(rounds):
        _point_records(records / f"round-{i}")
        if i > 0:
            _create_stores()
        phases.reset()
        load = os.getloadavg()[0]
        wall = (_cold_round if i == 0 else _warm_round)()
        compute = sum(phases.seconds[name] for name in COMPUTE)
        if i > 0:
            shares.append(100 * (wall - compute) / wall)
        print(f"\nround {i} ({'first in the process' if i == 0 else 'warm'}): {wall:.2f} s, "
              f"load average {load:.2f} -> {os.getloadavg()[0]:.2f}")
        print(table(phases, wall), flush=True)
    if shares:
        print(f"\nwarm rounds' orchestration and tracking share: min {min(shares):.1f} %, "
              f"median {statistics.median(shares):.1f} %, max {max(shares):.1f} % "
              f"({len(shares)} rounds)")


if __name__ == "__main__":
    main()
