"""Prefect artifacts are published off the flow's thread (``tasks.artifacts``): in the
caller's context, and waited for before the flow run ends."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from uuid import UUID

import pytest
from prefect import flow, get_client, task
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.context import TaskRunContext
from prefect.runtime import flow_run

from tasks import artifacts

_CALLER = contextvars.ContextVar[str]("caller", default="none")


@pytest.fixture(autouse=True)
def _nothing_pending() -> Iterator[None]:
    """Each test starts and ends with no artifact handed over (the pool is the process's)."""
    with contextlib.suppress(Exception):
        artifacts.settle()
    yield
    with contextlib.suppress(Exception):
        artifacts.settle()


def test_settle_waits_for_every_artifact_handed_over() -> None:
    gate, done = threading.Event(), []

    def create() -> None:
        gate.wait()
        done.append("published")

    artifacts.publish(create)
    try:
        with pytest.raises(TimeoutError, match="1 Prefect artifact"):
            artifacts.settle(timeout=0)  # it cannot be published before the gate opens
    finally:
        gate.set()
    artifacts.settle()  # still waited for after the time-out
    assert done == ["published"]
    artifacts.settle()  # nothing is left to wait for


def test_a_publication_runs_in_the_callers_context() -> None:
    seen: list[str] = []
    token = _CALLER.set("the gate's task")
    try:
        artifacts.publish(lambda: seen.append(_CALLER.get()))
    finally:
        _CALLER.reset(token)  # the publication keeps the context it was handed
    artifacts.settle()
    assert seen == ["the gate's task"]


def test_settle_raises_a_publications_error_once() -> None:
    done: list[str] = []

    def fails() -> None:
        raise ConnectionError("the Prefect API is down")

    artifacts.publish(fails)
    artifacts.publish(lambda: done.append("published"))
    with pytest.raises(ConnectionError, match="API is down"):
        artifacts.settle()
    assert done == ["published"]  # the others were waited for
    artifacts.settle()


@task
def _gate() -> str:
    context = TaskRunContext.get()
    assert context is not None
    artifacts.publish(create_markdown_artifact, key="gate-verdict", markdown="# passed")
    return str(context.task_run.id)


@flow
def _gated() -> tuple[str, str]:
    task_run_id = _gate()
    artifacts.settle()
    return str(flow_run.get_id()), task_run_id


def test_an_artifact_published_off_the_thread_belongs_to_its_task_run(prefect_server) -> None:
    flow_run_id, task_run_id = _gated()
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)])))
    assert [(a.key, str(a.task_run_id), a.data) for a in found] == [
        ("gate-verdict", task_run_id, "# passed")]
