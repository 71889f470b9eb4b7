"""The ``qhybrid`` command line.

Exit codes (:mod:`qhybrid_entrypoints.exits`): 0 done (or promoted); 2 invalid input (spec,
flag, data, setting); 3 the gates refused promotion; 4 backend failure; 5 post-processing
failure; 6 tracking failure; 7 replay mismatch; 8 the flow run was cancelled; 1 anything
unexpected. With ``--json`` exactly one JSON document goes to stdout (a contract with a JSON
Schema in docs/schema/); logs, progress and errors go to stderr.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape

from qhybrid.core import (
    QhybridError,
    ShowReport,
    SweepReport,
    collect_less,
    load_settings,
    load_spec,
)
from qhybrid_entrypoints._console import (
    FlagCommand,
    FlagGroup,
    console_logs,
    emit,
    environment_settings,
    err,
    fail,
    out,
)
from qhybrid_entrypoints._data_commands import data_app
from qhybrid_entrypoints._early import check_backends, check_data
from qhybrid_entrypoints._flow_command import (
    exits_of,
    flow_command,
    preflight,
    recover,
    run_flow,
    run_options,
)
from qhybrid_entrypoints.exits import EXIT_INTERRUPTED, EXIT_REFUSED, EXIT_TERMINATED

app = typer.Typer(
    name="qhybrid",
    help="Versioned hybrid quantum-classical experiments, promoted through staged gates.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=FlagGroup,
)
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


@app.command(cls=FlagCommand)
def run(
    spec: SpecArg,
    backend: BackendOption = None,
    as_json: JsonFlag = False,
    allow_unpinned_data: AllowUnpinned = False,
    verbose: Verbose = False,
) -> None:
    """One run of one experiment on one backend, tracked in MLflow, without gates."""
    flow_command(spec, "run", lambda: run_options(backend, allow_unpinned_data), as_json, verbose)


@app.command(cls=FlagCommand)
def promote(
    spec: SpecArg,
    as_json: JsonFlag = False,
    allow_unpinned_data: AllowUnpinned = False,
    verbose: Verbose = False,
) -> None:
    """Run every gate and promote the experiment if all pass (exit 3 if refused)."""
    report = flow_command(spec, "promotion", lambda: run_options(None, allow_unpinned_data),
                          as_json, verbose)
    if report.decision is not None and not report.decision.promote:
        raise typer.Exit(EXIT_REFUSED)


@app.command(cls=FlagCommand)
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
    with exits_of(as_json):
        settings = load_settings({**os.environ, **overrides})
        spec = load_spec(spec_path)
        options = run_options(backend, allow_unpinned_data)
        if spec.sweep is None:
            from qhybrid.core import SpecError

            raise SpecError(f"{spec_path}: the spec has no sweep section; add one "
                            "(docs/sweeps.md)", field="sweep")
        check_backends(spec, settings, options, kind="sweep")
        check_data(spec, settings, allow_unpinned=options.allow_unpinned_data)
        preflight(spec, settings, options, "sweep")
        console_logs(verbose)
        from flows import sweep_experiment
        from tasks import settings_overrides

        target = options.backend or spec.gates.ideal.backend
        where = str(output.resolve()) if output is not None else None

        def call() -> object:
            with settings_overrides(overrides):
                return sweep_experiment(spec, options, where)

        report = run_flow(f"sweeping {spec.name} on {target}", 1, call, settings,
                          SweepReport, points=True)
    if as_json:
        emit(report)
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


@app.command(cls=FlagCommand)
def experiments(as_json: JsonFlag = False) -> None:
    """Registered experiments, their versions, and which version holds each alias."""
    try:
        from qhybrid_usecases import experiments as list_experiments

        report = list_experiments(environment_settings())
    except QhybridError as exc:
        raise fail(exc, as_json) from exc
    if as_json:
        emit(report)
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


@app.command(cls=FlagCommand)
def show(
    target: Annotated[str, typer.Argument(
        help="NAME@ALIAS (e.g. qaoa-maxcut-3reg@champion) or an MLflow run id.")],
    as_json: JsonFlag = False,
) -> None:
    """What a promoted version or a run is, with its evidence (gates, metrics, tags)."""
    try:
        from qhybrid_usecases import show as show_target

        report = show_target(environment_settings(), target)
    except QhybridError as exc:
        raise fail(exc, as_json) from exc
    if as_json:
        emit(report)
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


@app.command(cls=FlagCommand)
def replay(
    manifest: Annotated[Path, typer.Argument(help="A run manifest (mlruns/manifests/<run>.json).")],
    as_json: JsonFlag = False,
) -> None:
    """Rerun the simulator part of a recorded run (the ideal sample, and the hardware gate's
    noisy one where it ran on Aer); exit 0 if counts are bit-identical, else 7."""
    try:
        from qhybrid_usecases import replay as replay_run
        from qhybrid_usecases import verify_replay

        report = replay_run(manifest, environment_settings())
        word = "[green]bit-identical[/]" if report.identical else "[red]DIFFERENT[/]"
        err.print(f"counts {word} ({report.differing_outcomes} outcomes differ); "
                  f"circuit {'identical' if report.circuit_identical else 'DIFFERENT'}")
        noisy = report.noisy
        shown = {"identical": "[green]bit-identical[/]", "different": "[red]DIFFERENT[/]"}
        err.print(f"hardware gate's noisy counts {shown.get(noisy.status, noisy.status)}: "
                  f"{escape(noisy.reason)}")
        verify_replay(report)
    except QhybridError as exc:
        raise fail(exc, as_json) from exc
    if as_json:
        emit(report)
    else:
        out.print(f"replayed {report.manifest}: reproduced")


@app.command(cls=FlagCommand)
def leases(
    release: Annotated[str | None, typer.Option(
        "--release", metavar="FLOW_RUN_ID",
        help="Cancel every open lease of this flow run (e.g. one killed outright).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List open leases (sessions, batches, remote jobs) in the state store; release a run's."""
    try:
        settings = environment_settings()
        if release is not None and settings.ibm_token is None and settings.ibm_token_block:
            from tasks import resolve_ibm_token

            settings = resolve_ibm_token(settings)
        from qhybrid_usecases import leases as open_leases

        if release is not None:  # also end what killed commands left RUNNING
            recover(settings, start_server=True)
        report = open_leases(settings, release=release)
    except QhybridError as exc:
        raise fail(exc, as_json) from exc
    if as_json:
        emit(report)
        return
    for o in report.released:
        outcome = "cancelled" if o.released else "release failed, still open"
        out.print(f"released: {o.kind} {o.provider_id} on {o.backend}: {outcome} ({o.detail})")
    if not report.open:
        out.print("no open leases")
    for lease in report.open:
        out.print(f"{lease.kind:8s} {lease.provider_id}  {lease.backend}  "
                  f"flow run {lease.flow_run_id}")


@app.command(cls=FlagCommand)
def serve() -> None:
    """The service on loopback: Prefect server and UI, deployments, one worker per SLA queue,
    the MLflow UI, the job API and its dispatcher. Ctrl-C stops everything."""
    import threading

    from qhybrid_control import policies_from
    from qhybrid_entrypoints._serve import serve as run_service

    stop = threading.Event()
    try:
        settings = environment_settings()
        policies = policies_from(settings.sla_policies)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        run_service(settings, policies, lambda text: err.print(escape(text), soft_wrap=True),
                    stop)
    except QhybridError as exc:
        raise fail(exc, as_json=False) from exc
    except RuntimeError as exc:
        err.print(f"[bold red]error[/]: {escape(str(exc))}")
        raise typer.Exit(1) from exc


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
