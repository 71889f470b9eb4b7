"""The ``qhybrid`` command line.

Exit codes (:mod:`qhybrid_entrypoints.exits`): 0 done (or promoted); 2 invalid input (spec,
flag, data, setting); 3 the gates refused promotion; 4 backend failure; 5 post-processing
failure; 6 tracking failure; 7 replay mismatch; 8 the flow run was cancelled; 1 anything
unexpected. With ``--json`` exactly one JSON document goes to stdout (a contract with a JSON
Schema in docs/schema/); logs, progress and errors go to stderr.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated, Literal, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from typer._click.core import Context, Parameter
from typer.core import TyperCommand, TyperGroup

from qhybrid.core import (
    ErrorRecord,
    ErrorReport,
    ExecutionRecord,
    ExperimentSpec,
    InvalidInputError,
    QhybridError,
    RunCancelledError,
    RunOptions,
    RunReport,
    Settings,
    ShowReport,
    SweepReport,
    collect_less,
    load_settings,
    load_spec,
)
from qhybrid_entrypoints._early import check_backends, check_data
from qhybrid_entrypoints.exits import EXIT_INTERRUPTED, EXIT_REFUSED, EXIT_TERMINATED, exit_code


def _flags_as_flags(params: list[Parameter]) -> None:
    # Typer's help shows a type for every option, <bool> for a flag too; a flag takes no value.
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


class _Command(TyperCommand):
    def get_params(self, ctx: Context) -> list[Parameter]:
        params = super().get_params(ctx)
        _flags_as_flags(params)
        return params


class _Group(TyperGroup):
    command_class = _Command

    def get_params(self, ctx: Context) -> list[Parameter]:
        params = super().get_params(ctx)
        _flags_as_flags(params)
        return params


app = typer.Typer(
    name="qhybrid",
    help="Versioned hybrid quantum-classical experiments, promoted through staged gates.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=_Group,
)
data_app = typer.Typer(help="Generate the problem instances that dvc.yaml pins.",
                       no_args_is_help=True, cls=_Group)
app.add_typer(data_app, name="data")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"qhybrid {version('qhybrid')}")
        raise typer.Exit()


@app.callback()
def _main(
    _version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit.")] = False,
) -> None:
    """Versioned hybrid quantum-classical experiments, promoted through staged gates."""

err = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 120)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
AllowUnpinned = Annotated[
    bool,
    typer.Option("--allow-unpinned-data",
                 help="Run on data that does not match dvc.lock (recorded on the run)."),
]
Verbose = Annotated[
    bool,
    typer.Option("--verbose", "-v",
                 help="Print Prefect's INFO log lines (each task run) too; by default only its "
                      "warnings and errors, so the progress bar reads cleanly."),
]
SpecArg = Annotated[Path, typer.Argument(metavar="SPEC", help="Experiment spec (YAML).")]
BackendOption = Annotated[str | None, typer.Option(
    metavar="NAME", help="aer, aer-noisy:<fake>, ibm:<device>; default: the spec's ideal backend.")]


class _ConsoleLevel(logging.Filter):
    """Lets through the log records at or above ``level`` (the console's threshold)."""

    def __init__(self) -> None:
        super().__init__()
        self.level = logging.WARNING

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


_console_level = _ConsoleLevel()


def _console_logs(verbose: bool) -> None:
    """Prefect's console handler shows warnings and errors only, INFO too with ``verbose``.

    A filter, not the handler's level: Prefect re-applies its logging configuration's handler
    levels when its server app starts in this process. Its API log handler still sends every
    line to the Prefect UI.
    """
    _console_level.level = logging.INFO if verbose else logging.WARNING
    _filter_console()


def _filter_console() -> None:
    """Puts the console filter on each of Prefect's console handlers (again, after a server
    start may have replaced them)."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for name in (None, "uvicorn", "fastapi"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, PrefectConsoleHandler) and _console_level not in handler.filters:
                handler.addFilter(_console_level)


def _fail(exc: QhybridError, as_json: bool) -> typer.Exit:
    if as_json:
        _emit(ErrorReport(error=ErrorRecord.model_validate(exc.to_dict())))
    err.print(f"[bold red]error[/] ({exc.layer}): {escape(str(exc))}", soft_wrap=True)
    return typer.Exit(exit_code(exc))


def _emit(document: BaseModel) -> None:
    """The one JSON document on stdout."""
    print(document.model_dump_json(indent=1))


def _settings() -> Settings:
    return load_settings(os.environ)


def _prefect_ui_hint(flow_run_id: str | None) -> str:
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


def _preflight(spec: ExperimentSpec, settings: Settings, options: RunOptions, kind: str) -> None:
    """Everything that can be checked before a flow starts: backends, data pins, parameters."""
    from qhybrid.core import parse_backend_name
    from qhybrid_usecases import backends_of, preflight

    if settings.ibm_token is None and settings.ibm_token_block and any(
            parse_backend_name(name).is_real_hardware
            for name in backends_of(spec, options, kind=kind).values()):
        from tasks import resolve_ibm_token

        settings = resolve_ibm_token(settings)  # local to the check; the flow resolves its own
    preflight(spec, settings, options, kind=kind)


def _interrupted(as_json: bool) -> typer.Exit:
    """Say that a Ctrl-C stopped the command; the exit to raise.

    The flow has released its leases and ended its MLflow run KILLED; Prefect has marked the
    flow run Crashed.
    """
    message = "interrupted: leases released, runs marked as ended"
    if as_json:
        _emit(ErrorReport(error=ErrorRecord(error="KeyboardInterrupt", layer="orchestration",
                                            transient=False, message=message)))
    err.print(f"[bold red]interrupted[/]: {message.removeprefix('interrupted: ')}")
    return typer.Exit(EXIT_INTERRUPTED)


def _options(backend: str | None, allow_unpinned_data: bool) -> RunOptions:
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


def _recover(settings: Settings, *, start_server: bool = False) -> None:
    """End what killed commands left RUNNING on this host: their MLflow runs, leases and
    Prefect flow runs (with ``start_server``, a temporary Prefect server is started for the
    latter only if one needs marking)."""
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
def _no_heartbeats() -> Iterator[None]:
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


def _run_flow(title: str, steps: int, call: Callable[[], object], settings: Settings,
              expect: type[_Report], *, points: bool = False) -> _Report:
    from prefect.exceptions import CancelledRun

    from qhybrid_entrypoints._prefect_server import configured_api_url, prefect_server
    from qhybrid_entrypoints._serve import running_service
    from tasks.stops import keeping_stops, stopped

    service = None if configured_api_url() else running_service(settings)
    where = ("" if configured_api_url() or service else
             " (a Prefect flow; its local server starts first)")
    err.print(f"[bold]{title}[/]{where}")
    with (_service_prefect(service.prefect_api) if service else contextlib.nullcontext(),
          prefect_server(note=lambda text: err.print(text)), _no_heartbeats()):
        _filter_console()
        _recover(settings)
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
    out.print(f"  Prefect: {_prefect_ui_hint(report.prefect_flow_run_id)}")
    if report.mlflow_run_id:
        from registry import Tracker

        hint = Tracker.for_settings(settings).ui_hint(report.mlflow_run_id,
                                                      local_port=settings.mlflow_port)
        out.print(f"  MLflow:  {hint}")


def _flow_command(spec_path: Path, kind: str, options_of: Callable[[], RunOptions],
                  as_json: bool, verbose: bool) -> RunReport:
    """Validate, preflight, run the kind's flow, and print its report."""
    try:
        settings = _settings()
        spec = load_spec(spec_path)
        options = options_of()
        # Before anything loads qiskit, MLflow or Prefect: a typo fails in a fraction of a second.
        check_backends(spec, settings, options, kind=kind)
        check_data(spec, settings, allow_unpinned=options.allow_unpinned_data)
        _preflight(spec, settings, options, kind)
        _console_logs(verbose)
        if kind == "run":
            from flows import run_experiment

            target = options.backend or spec.gates.ideal.backend
            report = _run_flow(f"running {spec.name} on {target}", 4,
                               lambda: run_experiment(spec, options), settings, RunReport)
        else:
            from flows import promote_experiment

            report = _run_flow(f"promoting {spec.name} {spec.version} through 4 gates", 9,
                               lambda: promote_experiment(spec, options), settings,
                               RunReport)
    except QhybridError as exc:
        raise _fail(exc, as_json) from exc
    except KeyboardInterrupt:
        raise _interrupted(as_json) from None
    if as_json:
        _emit(report)
    else:
        _print_report(report, settings)
    return report


@app.command(cls=_Command)
def run(
    spec: SpecArg,
    backend: BackendOption = None,
    as_json: JsonFlag = False,
    allow_unpinned_data: AllowUnpinned = False,
    verbose: Verbose = False,
) -> None:
    """One run of one experiment on one backend, tracked in MLflow, without gates."""
    _flow_command(spec, "run", lambda: _options(backend, allow_unpinned_data), as_json, verbose)


@app.command(cls=_Command)
def promote(
    spec: SpecArg,
    as_json: JsonFlag = False,
    allow_unpinned_data: AllowUnpinned = False,
    verbose: Verbose = False,
) -> None:
    """Run every gate and promote the experiment if all pass (exit 3 if refused)."""
    report = _flow_command(spec, "promotion", lambda: _options(None, allow_unpinned_data),
                           as_json, verbose)
    if report.decision is not None and not report.decision.promote:
        raise typer.Exit(EXIT_REFUSED)


@app.command(cls=_Command)
def sweep(
    spec_path: SpecArg,
    backend: BackendOption = None,
    output: Annotated[Path | None, typer.Option(
        "--out", metavar="FILE",
        help="The Parquet file to write; default sweeps/<name>-<version>-<run>.parquet.")] = None,
    runner: Annotated[Literal["serial", "dask"] | None, typer.Option(
        "--runner",
        help="serial: chunk after chunk in this process; dask: in parallel on a Dask cluster "
        "(QHYBRID_DASK_ADDRESS, or a local one). Default QHYBRID_SWEEP_RUNNER (serial).",
    )] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, max=1024, metavar="N",
        help="Worker processes of the local Dask cluster; default QHYBRID_DASK_WORKERS (2).",
    )] = None,
    as_json: JsonFlag = False,
    allow_unpinned_data: AllowUnpinned = False,
    verbose: Verbose = False,
) -> None:
    """Every named observable at every point of the spec's sweep section, to Parquet
    (docs/sweeps.md)."""
    # The options are settings (the flow reads them where it runs), given for this command.
    overrides = {**({"QHYBRID_SWEEP_RUNNER": runner} if runner else {}),
                 **({"QHYBRID_DASK_WORKERS": str(workers)} if workers else {})}
    try:
        settings = load_settings({**os.environ, **overrides})
        spec = load_spec(spec_path)
        options = _options(backend, allow_unpinned_data)
        if spec.sweep is None:
            from qhybrid.core import SpecError

            raise SpecError(f"{spec_path}: the spec has no sweep section; add one "
                            "(docs/sweeps.md)", field="sweep")
        check_backends(spec, settings, options, kind="sweep")
        check_data(spec, settings, allow_unpinned=options.allow_unpinned_data)
        _preflight(spec, settings, options, "sweep")
        _console_logs(verbose)
        from flows import sweep_experiment
        from tasks import settings_overrides

        target = options.backend or spec.gates.ideal.backend
        where = str(output.resolve()) if output is not None else None

        def call() -> object:
            with settings_overrides(overrides):
                return sweep_experiment(spec, options, where)

        report = _run_flow(f"sweeping {spec.name} on {target}", 1, call, settings,
                           SweepReport, points=True)
    except QhybridError as exc:
        raise _fail(exc, as_json) from exc
    except KeyboardInterrupt:
        raise _interrupted(as_json) from None
    if as_json:
        _emit(report)
        return
    out.print(f"\n[bold]{report.experiment} {report.version}[/] ({report.family}) swept on "
              f"[bold]{report.backend}[/]: {report.points} points in {report.chunks} chunks "
              f"({report.canary_points}-point canary first), {report.seconds:.1f} s")
    out.print(f"chunk size {report.chunk_size}: {report.chunk_size_reason}")
    out.print(f"values: {'exact (stderr 0)' if report.exact else 'sampled, with stderr'}; "
              f"observables {', '.join(report.observables)}")
    out.print(f"Parquet:    {report.output}")
    out.print(f"MLflow run: {report.mlflow_run_id} (the Parquet file and its plots as artifacts)")
    if report.prefect_flow_run_id:
        out.print(f"Prefect flow run: {report.prefect_flow_run_id}")


@app.command(cls=_Command)
def experiments(as_json: JsonFlag = False) -> None:
    """Registered experiments, their versions, and which version holds each alias."""
    try:
        from qhybrid_usecases import experiments as list_experiments

        report = list_experiments(_settings())
    except QhybridError as exc:
        raise _fail(exc, as_json) from exc
    if as_json:
        _emit(report)
        return
    from rich.table import Table

    if not report.experiments:
        out.print("no registered experiments yet: run `qhybrid promote SPEC`")
        return
    table = Table(title="Registered experiments")
    # A run id or a score is whole or useless: never cropped; the rest wraps when narrow.
    table.add_column("experiment", overflow="fold")
    table.add_column("version", overflow="fold")
    table.add_column("spec", overflow="fold")
    table.add_column("aliases", overflow="fold")
    table.add_column("score", no_wrap=True, min_width=7)
    table.add_column("MLflow run", no_wrap=True, min_width=32)
    for experiment in report.experiments:
        for v in experiment.versions:
            score = v.tags.get("qhybrid.score", "")
            with contextlib.suppress(ValueError):
                score = f"{float(score):.4g}"
            table.add_row(experiment.name, v.version, v.tags.get("qhybrid.version", "?"),
                          ", ".join(v.aliases), score, v.run_id or "")
    out.print(table)


@app.command(cls=_Command)
def show(
    target: Annotated[str, typer.Argument(
        help="NAME@ALIAS (e.g. qaoa-maxcut-3reg@champion) or an MLflow run id.")],
    as_json: JsonFlag = False,
) -> None:
    """What a promoted version or a run is, with its evidence (gates, metrics, tags)."""
    try:
        from qhybrid_usecases import show as show_target

        report = show_target(_settings(), target)
    except QhybridError as exc:
        raise _fail(exc, as_json) from exc
    if as_json:
        _emit(report)
        return
    _print_show(report)


def _print_show(report: ShowReport) -> None:
    from rich.table import Table

    version, run_info = report.version, report.run
    if version:
        aliases = ", ".join(version.aliases) or "none"
        out.print(f"[bold]{escape(version.name)}[/] version {version.version} (aliases: {aliases})")
    out.print(f"run {run_info.run_id} ({escape(run_info.name or '-')}, {run_info.status})")
    tags = run_info.tags
    if "qhybrid.decision" in tags:
        reasons = "; ".join(r for r in tags.get("qhybrid.reasons", "").split(" | ") if r)
        aliases = ", ".join(a for a in tags.get("qhybrid.aliases", "").split(",") if a)
        out.print(f"decision: {tags['qhybrid.decision']}"
                  f"{f' -> {aliases}' if aliases else ''} ({escape(reasons)})")
    for key in sorted(tags):
        if key.startswith(("qhybrid.", "dvc.")) and key not in _SHOWN_TAGS:
            out.print(f"  {key} = {escape(tags[key])}")
    for key, value in sorted(run_info.metrics.items()):
        out.print(f"  metric {key} = {value:.4g}")
    if not report.gates:
        return
    table = Table(title="Gates")
    for col in ("gate", "verdict", "backend", "metrics", "seconds"):
        table.add_column(col)
    for g in report.gates:
        verdict = g.tags.get("qhybrid.verdict", "?")
        shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(g.metrics.items()) if k != "seconds")
        seconds = g.metrics.get("seconds")
        table.add_row(g.tags.get("qhybrid.gate", g.name or "?"),
                      "[green]pass[/]" if verdict == "pass" else f"[red]{escape(verdict)}[/]",
                      g.tags.get("qhybrid.backend", ""), shown,
                      "" if seconds is None else f"{seconds:.1f}")
    out.print(table)
    for result in report.gate_results:
        out.print(f"[bold]{result.gate}[/] criteria:")
        for c in result.criteria:
            mark = "[green]pass[/]" if c.passed else "[red]FAIL[/]"
            out.print(f"  {escape(c.name)} = {c.value:.4g} {c.op} {c.limit:.4g}  {mark}")
    if report.manifest is not None:
        m = report.manifest
        data = ", ".join(f"{path} (md5 {pin.md5})" for path, pin in sorted(m.data.items()))
        out.print(f"manifest: spec sha256 {m.spec_sha256[:12]}, data {data or 'none'}")
    if report.promotions:
        out.print("promotion log:")
    for p in report.promotions:
        word = "promoted" if p.promote else "refused"
        number = f" as version {p.registered_version}" if p.registered_version else ""
        score = "" if p.score is None else f", score {p.score:.4g}"
        out.print(f"  {p.timestamp} {escape(p.experiment)} {escape(p.version)}: {word}"
                  f"{number}{score}")


_SHOWN_TAGS = frozenset({"qhybrid.decision", "qhybrid.reasons", "qhybrid.aliases"})


@app.command(cls=_Command)
def replay(
    manifest: Annotated[Path, typer.Argument(help="A run manifest (mlruns/manifests/<run>.json).")],
    as_json: JsonFlag = False,
) -> None:
    """Rerun the simulator part of a recorded run (the ideal sample, and the hardware gate's
    noisy one where it ran on Aer); exit 0 if counts are bit-identical, else 7."""
    try:
        from qhybrid_usecases import replay as replay_run
        from qhybrid_usecases import verify_replay

        report = replay_run(manifest, _settings())
        word = "[green]bit-identical[/]" if report.identical else "[red]DIFFERENT[/]"
        err.print(f"counts {word} ({report.differing_outcomes} outcomes differ); "
                  f"circuit {'identical' if report.circuit_identical else 'DIFFERENT'}")
        noisy = report.noisy
        shown = {"identical": "[green]bit-identical[/]", "different": "[red]DIFFERENT[/]"}
        err.print(f"hardware gate's noisy counts {shown.get(noisy.status, noisy.status)}: "
                  f"{escape(noisy.reason)}")
        verify_replay(report)
    except QhybridError as exc:
        raise _fail(exc, as_json) from exc
    if as_json:
        _emit(report)
    else:
        out.print(f"replayed {report.manifest}: reproduced")


@app.command(cls=_Command)
def leases(
    release: Annotated[str | None, typer.Option(
        "--release", metavar="FLOW_RUN_ID",
        help="Cancel every open lease of this flow run (e.g. one killed outright).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List open leases (sessions, batches, remote jobs) in the state store; release a run's."""
    try:
        settings = _settings()
        if release is not None and settings.ibm_token is None and settings.ibm_token_block:
            from tasks import resolve_ibm_token

            settings = resolve_ibm_token(settings)
        from qhybrid_usecases import leases as open_leases

        if release is not None:  # also end what killed commands left RUNNING
            _recover(settings, start_server=True)
        report = open_leases(settings, release=release)
    except QhybridError as exc:
        raise _fail(exc, as_json) from exc
    if as_json:
        _emit(report)
        return
    for o in report.released:
        outcome = "cancelled" if o.released else "release failed, still open"
        out.print(f"released: {o.kind} {o.provider_id} on {o.backend}: {outcome} ({o.detail})")
    if not report.open:
        out.print("no open leases")
    for lease in report.open:
        out.print(f"{lease.kind:8s} {lease.provider_id}  {lease.backend}  "
                  f"flow run {lease.flow_run_id}")


@app.command(cls=_Command)
def serve() -> None:
    """The service on loopback: Prefect server and UI, deployments, one worker per SLA queue,
    the MLflow UI, the job API and its dispatcher. Ctrl-C stops everything."""
    import threading

    from qhybrid_control import policies_from
    from qhybrid_entrypoints._serve import serve as run_service

    stop = threading.Event()
    try:
        settings = _settings()
        policies = policies_from(settings.sla_policies)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        run_service(settings, policies, lambda text: err.print(escape(text), soft_wrap=True),
                    stop)
    except QhybridError as exc:
        raise _fail(exc, as_json=False) from exc
    except RuntimeError as exc:
        err.print(f"[bold red]error[/]: {escape(str(exc))}")
        raise typer.Exit(1) from exc


@data_app.command("maxcut", cls=_Command)
def data_maxcut(
    out_path: Annotated[Path, typer.Option("--out", help="Output JSON file.")],
    nodes: Annotated[int, typer.Option(min=3, max=24)] = 10,
    degree: Annotated[int, typer.Option(min=1, max=23)] = 3,
    seed: int = 7,
    weighted: bool = False,
    triangle_free: Annotated[bool, typer.Option("--triangle-free/--any")] = True,
) -> None:
    """A random regular graph (deterministic for a seed)."""
    from qhybrid.experiments import random_regular_graph, write_instance

    try:
        graph = random_regular_graph(nodes, degree, seed, triangle_free=triangle_free,
                                     weighted=weighted)
    except ValueError as exc:
        raise _fail(InvalidInputError(str(exc)), as_json=False) from exc
    write_instance(graph, out_path)


@data_app.command("circulant", cls=_Command)
def data_circulant(
    out_path: Annotated[Path, typer.Option("--out", help="Output JSON file.")],
    nodes: Annotated[int, typer.Option(min=3, max=24)] = 12,
    offsets: Annotated[str, typer.Option(
        help="Comma-separated offsets k in 1..nodes/2: node i joins i+k mod nodes.")] = "1,6",
) -> None:
    """A circulant graph C_n(offsets), e.g. C_12(1,6): 3-regular, 18 edges."""
    from qhybrid.experiments import circulant_graph, write_instance

    try:
        graph = circulant_graph(nodes, tuple(int(k) for k in offsets.split(",")))
    except ValueError as exc:
        raise _fail(InvalidInputError(str(exc), field="--offsets"),
                    as_json=False) from exc
    write_instance(graph, out_path)


@data_app.command("qaoa-circuit", cls=_Command)
def data_qaoa_circuit(
    graph_path: Annotated[Path, typer.Option("--graph", help="A graph instance (JSON).")],
    out_path: Annotated[Path, typer.Option("--out", help="Output OpenQASM 3 file (.qasm).")],
    reps: Annotated[int, typer.Option(min=1, max=8, help="QAOA depth p.")] = 1,
) -> None:
    """A graph's QAOA circuit as OpenQASM 3 (a circuit for `kind: circuit` specs)."""
    from qhybrid.experiments import GraphInstance, load_instance, qaoa_circuit, write_qasm3

    try:
        graph = load_instance(graph_path, field="--graph")
    except QhybridError as exc:
        raise _fail(exc, as_json=False) from exc
    if not isinstance(graph, GraphInstance):
        raise _fail(InvalidInputError(f"{graph_path} is not a graph instance",
                                      field="--graph"), as_json=False)
    write_qasm3(qaoa_circuit(graph, reps), out_path)


@data_app.command("h2", cls=_Command)
def data_h2(out_path: Annotated[Path, typer.Option("--out", help="Output JSON file.")]) -> None:
    """The H2 (STO-3G, 0.735 Angstrom) two-qubit Hamiltonian."""
    from qhybrid.experiments import h2_hamiltonian, write_instance

    write_instance(h2_hamiltonian(), out_path)


@data_app.command("metrics", cls=_Command)
def data_metrics(
    instances: Annotated[list[Path], typer.Argument(help="Instance files (JSON).")],
    out_path: Annotated[Path, typer.Option("--out", help="Output JSON file.")],
) -> None:
    """Size and exact optimum of each instance, for `dvc metrics show`."""
    from qhybrid.experiments import write_instance_metrics

    try:
        write_instance_metrics(instances, out_path)
    except QhybridError as exc:
        raise _fail(exc, as_json=False) from exc


@data_app.command("molecule", cls=_Command)
def data_molecule(
    out_path: Annotated[Path, typer.Option("--out", help="Output JSON file.")],
    bond_length: Annotated[float, typer.Option(
        help="Distance between the two atoms, in Angstrom.")],
    atoms: Annotated[str, typer.Option(help="The two element symbols, comma-separated.")] = "H,H",
    basis: Annotated[str, typer.Option(help="A basis set PySCF knows.")] = "sto-3g",
    charge: int = 0,
    spin: Annotated[int, typer.Option(help="2S = N(alpha) - N(beta); 0 for a singlet.")] = 0,
    mapping: Annotated[str, typer.Option(
        help="parity (two qubits fewer), jordan-wigner or bravyi-kitaev.")] = "parity",
) -> None:
    """A diatomic molecule's qubit Hamiltonian, computed with PySCF and qiskit-nature."""
    from qhybrid.core import InvalidInputError
    from qhybrid.experiments import diatomic_coordinates, molecule_hamiltonian, write_instance

    symbols = tuple(s.strip() for s in atoms.split(","))
    try:
        if len(symbols) != 2:
            raise InvalidInputError(f"--bond-length places two atoms, got {atoms!r}",
                                    field="atoms")
        instance = molecule_hamiltonian(
            symbols, diatomic_coordinates(bond_length), basis=basis, charge=charge, spin=spin,
            mapping=mapping,
        )
    except InvalidInputError as exc:
        option = "--" + (exc.field or "atoms").replace("_", "-")
        raise typer.BadParameter(exc.message, param_hint=f"'{option}'") from exc
    write_instance(instance, out_path)


@data_app.command("ghz", cls=_Command)
def data_ghz(
    out_path: Annotated[Path, typer.Option("--out", help="Output OpenQASM 3 file (.qasm).")],
    qubits: Annotated[int, typer.Option(min=2, max=16)] = 3,
) -> None:
    """The GHZ-state circuit as OpenQASM 3 (a circuit for `kind: circuit` specs)."""
    from qhybrid.experiments import ghz_circuit, write_qasm3

    write_qasm3(ghz_circuit(qubits), out_path)


@data_app.command("ghz-observables", cls=_Command)
def data_ghz_observables(
    out_path: Annotated[Path, typer.Option("--out", help="Output JSON file.")],
    qubits: Annotated[int, typer.Option(min=2, max=16)] = 3,
) -> None:
    """The GHZ state's parities as named observables (a file for `family.observables_path`)."""
    from qhybrid.experiments import ghz_observables, write_observables

    write_observables(ghz_observables(qubits), out_path)


STOPPED_EXIT_SECONDS = 10.0
"""After a stop, how long the interpreter may take to shut down before the command exits anyway."""


def exit_within(seconds: float, code: int) -> None:
    """Make the process exit with ``code`` at the latest ``seconds`` from now.

    A signal can land while a library starts a worker thread and before it registers the
    thread for shutdown; the interpreter would then wait for that thread forever at exit. The
    command's own work is done by then (records ended, servers stopped), so a daemon thread
    ends the process if shutting down takes longer.
    """
    def end() -> None:
        time.sleep(seconds)
        os._exit(code)

    threading.Thread(target=end, name="qhybrid-exit", daemon=True).start()


def main() -> None:
    """Console-script entry point."""
    collect_less()  # before a command loads Prefect, MLflow and Qiskit: no full collections
    try:
        app()
    except SystemExit as exc:
        if exc.code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
            exit_within(STOPPED_EXIT_SECONDS, exc.code)
        raise


if __name__ == "__main__":
    main()
