"""The machinery of the commands that run a flow (``run``, ``promote``, ``sweep``).

What can be checked before a flow starts (:func:`preflight`), the run options from the flags
(:func:`run_options`), the flow run itself in this process (:func:`run_flow`): the Prefect
server it uses, a progress bar on stderr, Ctrl-C and SIGTERM handling, the ending of what
killed commands left running (:func:`recover`, also for ``leases --release``) and the wait for
Prefect's records; a qhybrid error or a Ctrl-C as the command's exit (:func:`exits_of`,
:func:`interrupted`). For ``run`` and ``promote``, all of it in order, then the report printed
for a person, with where to see the run in the Prefect and MLflow UIs
(:func:`prefect_ui_hint`), or as the one JSON document (:func:`flow_command`); ``sweep`` uses
the same parts with its own settings and report (``cli.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TypeVar

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from qhybrid.core import (
    ErrorRecord,
    ErrorReport,
    ExecutionRecord,
    ExperimentSpec,
    QhybridError,
    RunCancelledError,
    RunOptions,
    RunReport,
    Settings,
    SweepReport,
    load_spec,
)
from qhybrid_entrypoints._console import (
    console_logs,
    emit,
    environment_settings,
    err,
    fail,
    filter_console,
    out,
)
from qhybrid_entrypoints._early import check_backends, check_data
from qhybrid_entrypoints.exits import EXIT_INTERRUPTED, EXIT_TERMINATED


def prefect_ui_hint(flow_run_id: str | None) -> str:
    """Where a person sees the flow run: the running server's UI (``PREFECT_API_URL``), or
    the command that serves this process's Prefect home, which its throwaway server used."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    page = f"runs/flow-run/{flow_run_id}"
    if settings.ui_url:
        return f"{settings.ui_url.rstrip('/')}/{page}"
    return (f"PREFECT_HOME={settings.home} prefect server start   "
            f"# then http://127.0.0.1:4200/{page}")


def _wait_for_records(flow_run_id: str | None) -> None:
    # The ephemeral Prefect server records task runs asynchronously and stops with this process;
    # wait until every task run it knows is final so the UI shows the whole run.
    if flow_run_id is None:
        return
    import time
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + 15
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
            )
            if runs and all(r.state is not None and r.state.is_final() for r in runs):
                return
            time.sleep(0.2)


def preflight(spec: ExperimentSpec, settings: Settings, options: RunOptions, kind: str) -> None:
    """Everything that can be checked before a flow starts: backends, data pins, parameters.

    Raises:
        QhybridError: A check failed (the use case's preflight names which).
    """
    from qhybrid.core import parse_backend_name
    from qhybrid_usecases import backends_of
    from qhybrid_usecases import preflight as use_case_preflight

    if settings.ibm_token is None and settings.ibm_token_block and any(
            parse_backend_name(name).is_real_hardware
            for name in backends_of(spec, options, kind=kind).values()):
        from tasks import resolve_ibm_token

        settings = resolve_ibm_token(settings)  # local to the check; the flow resolves its own
    use_case_preflight(spec, settings, options, kind=kind)


def interrupted(as_json: bool) -> typer.Exit:
    """Say that a Ctrl-C stopped the command; the exit to raise.

    The flow has released its leases and ended its MLflow run KILLED; Prefect has marked the
    flow run Crashed.
    """
    message = "interrupted: leases released, runs marked as ended"
    if as_json:
        emit(ErrorReport(error=ErrorRecord(error="KeyboardInterrupt", layer="orchestration",
                                           transient=False, message=message)))
    err.print(f"[bold red]interrupted[/]: {message.removeprefix('interrupted: ')}")
    return typer.Exit(EXIT_INTERRUPTED)


@contextlib.contextmanager
def exits_of(as_json: bool) -> Iterator[None]:
    """Around a flow command's work: a qhybrid error becomes its exit code (:func:`fail`), a
    Ctrl-C the exit of an interrupted flow (:func:`interrupted`, 130).

    Raises:
        typer.Exit: Either of them stopped the command.
    """
    try:
        yield
    except QhybridError as exc:
        raise fail(exc, as_json) from exc
    except KeyboardInterrupt:
        raise interrupted(as_json) from None


def run_options(backend: str | None, allow_unpinned_data: bool) -> RunOptions:
    """The run options of a flow command's flags.

    Raises:
        BackendNameError: ``backend`` names no backend qhybrid knows.
    """
    if backend is not None:
        from qhybrid.core import parse_backend_name

        parse_backend_name(backend, field="--backend")
    return RunOptions(backend=backend, allow_unpinned_data=allow_unpinned_data)


class _TaskProgress(logging.Handler):
    """Advances a rich progress bar each time a Prefect task run of the flow finishes."""

    def __init__(self, progress: Progress, bar: TaskID) -> None:
        super().__init__(level=logging.INFO)
        self.progress, self.bar = progress, bar

    def emit(self, record: logging.LogRecord) -> None:
        name = record.__dict__.get("task_name")
        if name and name.startswith("submit-job"):
            return  # one per provider submission; the bar counts steps of the flow
        if name and "Finished in state" in record.getMessage():
            self.progress.update(self.bar, advance=1, description=f"{name} done")


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(EXIT_TERMINATED)


class _Interrupts:
    """Remembers a Ctrl-C: Prefect may replace the ``KeyboardInterrupt`` with an error of its
    own when the signal lands while it creates a task run, and a stop must still exit 130."""

    def __init__(self) -> None:
        self.seen = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.seen = True
        signal.default_int_handler(signum, frame)


def recover(settings: Settings, *, start_server: bool = False) -> None:
    """End what killed commands left RUNNING on this host: their MLflow runs, leases and
    Prefect flow runs (with ``start_server``, a temporary Prefect server is started for the
    latter only if one needs marking).

    Raises:
        QhybridError: The state store or the MLflow store could not be read or written.
    """
    from qhybrid_entrypoints._prefect_server import prefect_server
    from qhybrid_usecases import ABANDONED_REASON, Services, reap_abandoned

    reaped = reap_abandoned(Services.open(settings))
    flow_runs = [r.flow_run_id for r in reaped if r.flow_run_id]
    if flow_runs:
        from tasks import mark_crashed

        with prefect_server() if start_server else contextlib.nullcontext():
            mark_crashed(flow_runs, ABANDONED_REASON)
    for run in reaped:
        err.print(f"[yellow]ended[/] MLflow run {run.mlflow_run_id} (flow run "
                  f"{run.flow_run_id or '-'}): process {run.pid} was killed; "
                  f"{run.leases_released} leases released")


@contextlib.contextmanager
def _service_prefect(api_url: str) -> Iterator[None]:
    """Point Prefect at the running ``qhybrid serve``'s server for the block."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    err.print(f"using the Prefect server of the running qhybrid service ({api_url}): no "
              "temporary server to start")
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield


@contextlib.contextmanager
def no_heartbeats() -> Iterator[None]:
    """Flows this command runs in its own process send no Prefect heartbeats, unless
    ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` asks for them.

    Prefect ends each flow run by joining its heartbeat thread, which sleeps in one-second
    steps: up to a second per command. A CLI run whose process is killed is ended by the next
    command on the host instead (the reaper), with its leases; a worker's runs keep theirs.
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    if {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY"} & set(
            os.environ):
        yield
        return
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


class _PointProgress(logging.Handler):
    """Moves a rich progress bar to the points a sweep has done (its ``qhybrid.sweep`` log)."""

    def __init__(self, progress: Progress, bar: TaskID) -> None:
        super().__init__(level=logging.INFO)
        self.progress, self.bar = progress, bar

    def emit(self, record: logging.LogRecord) -> None:
        done, total = record.__dict__.get("sweep_done"), record.__dict__.get("sweep_total")
        if isinstance(done, int) and isinstance(total, int):
            self.progress.update(self.bar, completed=done, total=total,
                                 description=f"{done} of {total} points")


_Report = TypeVar("_Report", RunReport, SweepReport)


def run_flow(title: str, steps: int, call: Callable[[], object], settings: Settings,
             expect: type[_Report], *, points: bool = False) -> _Report:
    """Run a flow in this process, with a progress bar on stderr; the flow's report.

    Args:
        title: What the command does, printed first.
        steps: The length of the progress bar (task runs, or points with ``points``).
        call: Runs the flow and returns its result.
        settings: The command's settings.
        expect: The class of the report the flow returns.
        points: Count a sweep's points instead of task runs.

    Raises:
        RunCancelledError: The flow run was cancelled, or ended without a report.
        QhybridError: The flow failed (its error), or :func:`recover` did.
        KeyboardInterrupt: A Ctrl-C stopped the flow.
        SystemExit: A SIGTERM stopped the flow (exit 143).
    """
    from prefect.exceptions import CancelledRun

    from qhybrid_entrypoints._prefect_server import configured_api_url, prefect_server
    from qhybrid_entrypoints._serve import running_service
    from tasks.stops import keeping_stops, stopped

    service = None if configured_api_url() else running_service(settings)
    where = ("" if configured_api_url() or service else
             " (a Prefect flow; its local server starts first)")
    err.print(f"[bold]{title}[/]{where}")
    with (_service_prefect(service.prefect_api) if service else contextlib.nullcontext(),
          prefect_server(note=lambda text: err.print(text)), no_heartbeats()):
        filter_console()
        recover(settings)
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=True) as progress:
            bar = progress.add_task("starting", total=steps)
            # A sweep's bar counts points (one task does them all); a run's, its task runs.
            handler: logging.Handler = (_PointProgress(progress, bar) if points
                                        else _TaskProgress(progress, bar))
            logger = logging.getLogger("qhybrid.sweep" if points else "prefect.task_runs")
            logger.addHandler(handler)
            level, logger.level = logger.level, min(logger.level or logging.INFO, logging.INFO)
            # On SIGTERM Prefect marks the flow crashed (our flows release their leases first),
            # then re-sends the signal to the previous handler: exit cleanly.
            previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
            interrupts = _Interrupts()
            previous_int = signal.signal(signal.SIGINT, interrupts)
            try:
                with keeping_stops():  # a SIGTERM Prefect loses still stops the flow
                    report = call()
                    # Noted after the flow's last submission: it ended, the command still stops.
                    if stopped(signal.SIGINT):
                        raise KeyboardInterrupt
                    if stopped(signal.SIGTERM):
                        raise SystemExit(EXIT_TERMINATED)
                if not isinstance(report, expect):
                    raise RunCancelledError(f"the flow run ended without a report: {report}")
            except CancelledRun as exc:
                raise RunCancelledError(f"the flow run was cancelled: {exc}") from exc
            except Exception as exc:
                if interrupts.seen:
                    raise KeyboardInterrupt from exc
                from qhybrid_usecases import terminated

                if terminated(exc):  # a SIGTERM Prefect replaced with an error: still 143
                    raise SystemExit(EXIT_TERMINATED) from exc
                raise
            finally:
                logger.removeHandler(handler)
                logger.setLevel(level)
                signal.signal(signal.SIGTERM, previous)
                signal.signal(signal.SIGINT, previous_int)
        _wait_for_records(report.prefect_flow_run_id)
    return report


def _print_execution(e: ExecutionRecord) -> None:
    retries = sum(e.retries_by_class.values())
    by_class = ", ".join(f"{k} {v}" for k, v in sorted(e.retries_by_class.items()))
    classes = f" ({by_class})" if by_class else ""
    out.print(f"execution: {e.provider_submissions} provider submissions, "
              f"{e.reattachments} re-attached, {retries} retries{classes}, "
              f"{e.breaker_trips} breaker trips, est. QPU {e.qpu_seconds_estimate:.2f} s")
    for f in e.fallbacks:
        out.print(f"  [yellow]downgraded[/]: {f.role} ran on {f.used} instead of {f.requested} "
                  f"({f.reason.get('error')}: {f.reason.get('message')})")
    if e.mitigation is not None:
        m = e.mitigation
        out.print(f"  mitigation ({', '.join(m.techniques)}): {m.unmitigated_value:.4g} -> "
                  f"{m.mitigated_value:.4g} (exact {m.ideal_value:.4g}); improvement "
                  f"{m.improvement:.4g} [{m.improvement_low:.4g}, {m.improvement_high:.4g}]")


def _print_report(report: RunReport, settings: Settings) -> None:
    from rich.table import Table

    out.print(f"\n[bold]{report.experiment} {report.version}[/] ({report.family}), "
              f"objective [bold]{report.objective}[/] ({report.direction})")
    if report.data_overrides:
        out.print(f"[yellow]ran on unpinned data:[/] {'; '.join(report.data_overrides)}")
    if report.gates:
        table = Table(title="Gates", show_lines=False)
        for col in ("gate", "verdict", "backend", "key metrics", "seconds"):
            table.add_column(col)
        for g in report.gates:
            shown = ", ".join(f"{c.name}={c.value:.4g}" for c in g.criteria)
            verdict = "[green]pass[/]" if g.passed else "[red]FAIL[/]"
            table.add_row(g.gate, verdict, g.backend, shown, f"{g.seconds:.1f}")
        out.print(table)
        for g in report.gates:
            for r in g.reasons:
                out.print(f"  [red]{g.gate}[/]: {r}")
    else:
        out.print(f"backend [bold]{report.backend}[/]")
        for k, v in sorted(report.metrics.items()):
            out.print(f"  {k:24s} {v:.6g}")
    if report.baselines:
        table = Table(title="Classical baselines vs quantum")
        for col in ("solver", "objective", "quality", "seconds", "exact"):
            table.add_column(col)
        for b in report.baselines:
            table.add_row(b.solver, f"{b.objective:.6g}", f"{b.quality:.4f}", f"{b.seconds:.4f}",
                          str(b.exact))
        out.print(table)
    params = ", ".join(f"{k}={v:.4f}" for k, v in report.parameters.items())
    out.print(f"parameters: {params}")
    if report.execution is not None:
        _print_execution(report.execution)
    if report.decision is not None:
        d = report.decision
        head = "[bold green]PROMOTED[/]" if d.promote else "[bold red]REFUSED[/]"
        moved = f" -> {', '.join(d.aliases)}" if d.aliases else ""
        aliases = f" as version {report.registered_version}{moved}" if d.promote else ""
        out.print(f"decision: {head}{aliases}")
        for r in d.reasons:
            out.print(f"  - {r}")
    out.print(f"MLflow run: {report.mlflow_run_id}")
    out.print(f"manifest:   {report.manifest}")
    if report.prefect_flow_run_id:
        out.print(f"Prefect flow run: {report.prefect_flow_run_id}")
    out.print("\nOpen the UIs on this data:")
    out.print(f"  Prefect: {prefect_ui_hint(report.prefect_flow_run_id)}")
    if report.mlflow_run_id:
        from registry import Tracker

        hint = Tracker.for_settings(settings).ui_hint(report.mlflow_run_id,
                                                      local_port=settings.mlflow_port)
        out.print(f"  MLflow:  {hint}")


def flow_command(spec_path: Path, kind: str, options_of: Callable[[], RunOptions],
                 as_json: bool, verbose: bool) -> RunReport:
    """Validate, preflight, run the kind's flow, and print its report.

    Raises:
        typer.Exit: A qhybrid error (its exit code) or a Ctrl-C (130) stopped the command.
        SystemExit: A SIGTERM stopped the flow (exit 143).
    """
    with exits_of(as_json):
        settings = environment_settings()
        spec = load_spec(spec_path)
        options = options_of()
        # Before anything loads qiskit, MLflow or Prefect: a typo fails in a fraction of a second.
        check_backends(spec, settings, options, kind=kind)
        check_data(spec, settings, allow_unpinned=options.allow_unpinned_data)
        preflight(spec, settings, options, kind)
        console_logs(verbose)
        if kind == "run":
            from flows import run_experiment

            target = options.backend or spec.gates.ideal.backend
            report = run_flow(f"running {spec.name} on {target}", 4,
                              lambda: run_experiment(spec, options), settings, RunReport)
        else:
            from flows import promote_experiment

            report = run_flow(f"promoting {spec.name} {spec.version} through 4 gates", 9,
                              lambda: promote_experiment(spec, options), settings,
                              RunReport)
    if as_json:
        emit(report)
    else:
        _print_report(report, settings)
    return report
