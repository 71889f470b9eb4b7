"""Accepting a job reads its spec file once while the file stays the same, and again when it
changes; a request's overrides reach the stored spec, and a request without any stores the
file's spec as it is."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import qhybrid_usecases as usecases
from qhybrid.core import RunJobRequest, Settings, SpecError, load_settings
from qhybrid_control import JobStore

SPEC = Path(__file__).resolve().parents[2] / "specs" / "vqe-h2.yaml"


@pytest.fixture
def project(settings: Settings, tmp_path: Path) -> Settings:
    """Settings whose project holds a copy of the H2 spec (and its dataset) to edit."""
    root = tmp_path / "project"
    (root / "specs").mkdir(parents=True)
    shutil.copy(SPEC, root / "specs" / "h2.yaml")
    shutil.copytree(SPEC.parents[1] / "data", root / "data")
    return load_settings({"QHYBRID_STATE_URL": settings.state_store_url,
                          "QHYBRID_PROJECT_ROOT": str(root)})


def _stored_spec(jobs: JobStore, job_id: str) -> dict[str, object]:
    return jobs.request_of(job_id)["spec"]  # type: ignore[no-any-return]


def test_an_edited_spec_file_is_read_again(project: Settings) -> None:
    jobs = usecases.job_store(project)
    path = project.project_root / "specs" / "h2.yaml"
    request = RunJobRequest(kind="run", spec_path="specs/h2.yaml")

    first, _ = usecases.accept_job(jobs, project, request, client="team")
    text = path.read_text()
    path.write_text(text.replace("name: vqe-h2", "name: vqe-h2-edited"))
    stat = path.stat()  # same size or not, a new modification time marks the change
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    second, _ = usecases.accept_job(jobs, project, request, client="team")
    path.write_text(text.replace("shots: 4000", "shots: 4OOO"))
    with pytest.raises(SpecError) as refused:
        usecases.accept_job(jobs, project, request, client="team")

    assert (first.experiment, second.experiment) == ("vqe-h2", "vqe-h2-edited")
    assert refused.value.field == "spec_path"
    assert str(project.project_root) not in refused.value.message


def test_overrides_reach_the_stored_spec_and_no_override_keeps_the_file(
        project: Settings) -> None:
    jobs = usecases.job_store(project)

    plain, _ = usecases.accept_job(jobs, project, RunJobRequest(
        kind="run", spec_path="specs/h2.yaml"), client="team")
    more_shots, _ = usecases.accept_job(jobs, project, RunJobRequest(
        kind="run", spec_path="specs/h2.yaml", shots=123), client="team")
    plain_again, _ = usecases.accept_job(jobs, project, RunJobRequest(
        kind="run", spec_path="specs/h2.yaml"), client="team")

    assert _stored_spec(jobs, plain.id)["shots"] == 4000
    assert _stored_spec(jobs, more_shots.id)["shots"] == 123
    assert _stored_spec(jobs, plain_again.id)["shots"] == 4000
