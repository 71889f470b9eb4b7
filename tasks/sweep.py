"""Prefect tasks of a sweep: the whole sweep is one task run (its chunks are submissions of
the execution plane, each a ``submit-job`` task run), with its progress in the run's log."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

import qhybrid_usecases as usecases
from qhybrid.core import ExperimentSpec, RunOptions, SweepReport
from qhybrid_usecases import RunHandle, Services, SweepOutcome


def sweep_tags(spec: ExperimentSpec, options: RunOptions) -> list[str]:
    """The tags a sweep's flow run carries, e.g. ``kind:sweep``."""
    return [f"experiment:{spec.name}", f"version:{spec.version}", "kind:sweep",
            f"backend:{options.backend or spec.gates.ideal.backend}"]


@task(name="sweep-points", cache_policy=NO_CACHE)
def sweep_points(run: RunHandle, services: Services, output: str | None) -> SweepOutcome:
    """Every named observable at every point of the spec's sweep, canary first, to Parquet."""
    logger = get_run_logger()

    def progress(done: int, total: int) -> None:
        logger.info("sweep: %d of %d points", done, total)

    return usecases.sweep_points(run, services, Path(output) if output else None,
                                 progress=progress)


@task(name="finish-sweep", cache_policy=NO_CACHE)
def finish_sweep(run: RunHandle, services: Services, outcome: SweepOutcome) -> SweepReport:
    """Log the Parquet file and its plots to MLflow, end the run, and report it."""
    report = usecases.finish_sweep(run, services, outcome)
    create_markdown_artifact(
        key=f"{run.spec.name}-sweep".lower(),
        markdown=(f"# Sweep of {report.experiment} {report.version} on {report.backend}\n\n"
                  f"{report.points} points in {report.chunks} chunks of up to "
                  f"{report.chunk_size} ({report.chunk_size_reason}); "
                  f"{report.seconds:.1f} s.\n\nParquet: `{report.output}`; MLflow run "
                  f"`{report.mlflow_run_id}`.\n"),
        description=f"sweep: {report.points} points")
    return report
