"""The promotion log and the manifests are where a team reads them: the shared state store and
the tracking store's artifacts; ``show`` reads them there, not from this machine's mirrors."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import qhybrid_usecases as usecases
from qhybrid.core import Settings
from registry import read_decisions, read_manifest
from tests.registry.conftest import Promoted

SPEC = "vqe-h2"


def test_show_reads_the_shared_log_and_manifest_without_local_mirrors(
        promoted: Callable[[str], Promoted], settings: Settings) -> None:
    first = promoted(SPEC)
    second = promoted(SPEC)
    local = read_manifest(settings.manifests_path / f"{first.mlflow_run_id}.json")
    mirror = read_decisions(settings.promotion_log_path)
    settings.promotion_log_path.unlink()
    shutil.rmtree(settings.manifests_path)  # another machine: none of this one's files

    report = usecases.show(settings, f"{SPEC}@champion")
    assert report.run.run_id == first.mlflow_run_id
    assert report.manifest == local
    assert report.promotions == tuple(mirror)
    assert [p.mlflow_run_id for p in report.promotions] == [first.mlflow_run_id,
                                                            second.mlflow_run_id]


def test_show_falls_back_to_the_tracking_store_artifacts(
        promoted: Callable[[str], Promoted], settings: Settings, configure,
        tmp_path) -> None:
    first = promoted(SPEC)
    local = read_manifest(settings.manifests_path / f"{first.mlflow_run_id}.json")
    [decision] = read_decisions(settings.promotion_log_path)
    shutil.rmtree(settings.manifests_path)
    # A state store that never saw the promotion (e.g. the run predates the shared tables).
    elsewhere = configure(state_url=f"sqlite:///{tmp_path}/other-state.db")

    report = usecases.show(elsewhere, first.mlflow_run_id)
    assert report.manifest == local
    assert report.promotions == (decision,)


def test_a_run_without_records_shows_none(settings: Settings) -> None:
    services = usecases.Services.open(settings)
    run_id = services.tracker.start_run("bare", tags={})
    report = usecases.show(settings, run_id)
    assert report.manifest is None and report.promotions == ()

