"""Reading the records back: registered experiments, a promoted version or a run, and leases."""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError

from backends import StateStore, open_backend, release_leases
from qhybrid.core import (
    ExperimentsReport,
    GateResult,
    InvalidInputError,
    LeaseRecord,
    LeaseRelease,
    LeasesReport,
    PromotionLogRecord,
    RegisteredExperiment,
    RunManifest,
    Settings,
    ShowReport,
    TrackingError,
)
from registry import Tracker, shared_decisions, shared_manifest

_M = TypeVar("_M", RunManifest, PromotionLogRecord, GateResult)


def experiments(settings: Settings) -> ExperimentsReport:
    """Every registered experiment with its versions (newest first) and their aliases.

    Raises:
        TrackingError: MLflow cannot be read.
    """
    registered = Tracker.for_settings(settings).registered()
    return ExperimentsReport(experiments=tuple(
        RegisteredExperiment(name=name, versions=tuple(versions)) for name, versions in registered))


def show(settings: Settings, target: str) -> ShowReport:
    """A promoted version (``NAME@ALIAS``) or a run (its MLflow id), with its gate runs, its
    manifest and its experiment's promotion log, read where the team shares them: the state
    store, else the tracking store's artifacts (never this machine's local mirrors).

    Raises:
        InvalidInputError: No version holds the alias, or no run has the id (field TARGET).
        TrackingError: MLflow or the state store cannot be read, or a stored record is invalid.
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
    engine = StateStore(settings.state_store_url).engine
    manifest = shared_manifest(engine, run_id) or _artifact(tracker, run_id, "experiment/"
                                                            "manifest.json", RunManifest)
    experiment = run.tags.get("qhybrid.experiment")
    promotions = shared_decisions(engine, experiment) if experiment else []
    if not promotions:
        own = _artifact(tracker, run_id, "promotion.json", PromotionLogRecord)
        promotions = [own] if own is not None else []
    gates = tuple(tracker.child_runs(run_id))
    results = tuple(r for r in (_artifact(tracker, g.run_id, "gate.json", GateResult)
                                for g in gates) if r is not None)
    return ShowReport(version=version, run=run, gates=gates, manifest=manifest,
                      promotions=tuple(promotions), gate_results=results)


def _artifact(tracker: Tracker, run_id: str, path: str, model: type[_M]) -> _M | None:
    """The run's JSON artifact at ``path`` as ``model``, or None if it has none.

    Raises:
        TrackingError: It cannot be read, or is not a valid ``model``.
    """
    text = tracker.read_text(run_id, path)
    if text is None:
        return None
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise TrackingError(f"run {run_id}: {path} is not a valid {model.__name__}: "
                            f"{exc}") from exc


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
