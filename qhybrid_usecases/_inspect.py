"""Reading the records back: registered experiments, a promoted version or a run, and leases."""

from __future__ import annotations

from backends import StateStore, open_backend, release_leases
from qhybrid.core import (
    ExperimentsReport,
    InvalidInputError,
    LeaseRecord,
    LeaseRelease,
    LeasesReport,
    RegisteredExperiment,
    Settings,
    ShowReport,
    TrackingError,
)
from registry import Tracker


def experiments(settings: Settings) -> ExperimentsReport:
    """Every registered experiment with its versions (newest first) and their aliases.

    Raises:
        TrackingError: MLflow cannot be read.
    """
    registered = Tracker.for_settings(settings).registered()
    return ExperimentsReport(experiments=tuple(
        RegisteredExperiment(name=name, versions=tuple(versions)) for name, versions in registered))


def show(settings: Settings, target: str) -> ShowReport:
    """A promoted version (``NAME@ALIAS``) or a run (its MLflow id), with its gate runs.

    Raises:
        InvalidInputError: No version holds the alias, or no run has the id (field TARGET).
        TrackingError: MLflow cannot be read.
    """
    tracker = Tracker.for_settings(settings)
    version = None
    if "@" in target:
        name, alias = target.split("@", 1)
        version = tracker.version_by_alias(name, alias)
        if version is None or version.run_id is None:
            raise InvalidInputError(f"no version of '{name}' holds alias '{alias}'",
                                    field="TARGET")
        run_id = version.run_id
    else:
        run_id = target
    try:
        run = tracker.get_run(run_id)
    except TrackingError as exc:
        raise InvalidInputError(f"no run '{run_id}' in the MLflow store", field="TARGET") from exc
    return ShowReport(version=version, run=run, gates=tuple(tracker.child_runs(run_id)))


def leases(settings: Settings, *, release: str | None = None) -> LeasesReport:
    """Open leases in the state store; with ``release``, first cancel every lease that flow
    run still holds (e.g. one killed outright).

    Raises:
        InvalidInputError: The state store URL is unusable.
        TrackingError: The state store cannot be read or written.
    """
    store = StateStore(settings.state_store_url)
    released: list[LeaseRelease] = []
    if release is not None:
        released = release_leases(
            store, release,
            lambda name: open_backend(name, settings, transpiler_seed=0, store=store),
            reason="released by `qhybrid leases`")
    still_open = tuple(LeaseRecord(id=lease.id, flow_run_id=lease.flow_run_id,
                                   backend=lease.backend, kind=lease.kind,
                                   provider_id=lease.provider_id, status=lease.status)
                       for lease in store.leases(status="open"))
    return LeasesReport(released=tuple(released), open=still_open)
