"""What a person reads in the Prefect UI, on the session's real Prefect server: flow runs named
and tagged after their experiment, a refused promotion's own final state and its decision
artifact, the execution summary table, and the hardware backends' tag concurrency limits the
service sets up."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.client.schemas.objects import Artifact, FlowRun, TaskRun

from flows import promote_experiment, run_experiment
from qhybrid.core import ExperimentSpec, RunOptions, RunReport, load_spec, spec_from_mapping
from registry import Tracker


def _flow_run(flow_run_id: str) -> tuple[FlowRun, dict[str, Artifact], list[TaskRun]]:
    """The flow run as Prefect's API shows it, its artifacts by key and its task runs."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
        task_runs = client.read_task_runs(task_run_filter=TaskRunFilter(
            flow_run_id=TaskRunFilterFlowRunId(any_=[run.id])))
    return run, {str(a.key): a for a in artifacts}, task_runs


def _submissions(flow_run_id: str, names: set[str]) -> set[tuple[str, tuple[str, ...]]]:
    """The flow run's ``submit-job`` task runs as (name, tags), once every one of ``names`` and
    the run's last step (``finish-run``) are on the server.

    Prefect 3 records task runs from the events its client sends: the server writes them a
    moment after the flow has returned. The client's queue is drained first (Prefect's own
    hook), then the server is read until they are all there (at most 60 s).
    """
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=30)
    deadline = time.monotonic() + 60
    while True:
        task_runs = _flow_run(flow_run_id)[2]
        found = {(t.name, tuple(t.tags)) for t in task_runs if t.name.startswith("submit-job")}
        finished = any(t.name.startswith("finish-run") for t in task_runs)
        if (finished and {name for name, _ in found} >= names) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _unreachable_statistics(repo: Path) -> ExperimentSpec:
    """vqe-h2 with a threshold no estimate can pass (1e-12 Ha): its gates fail, the run works."""
    data = load_spec(repo / "specs" / "vqe-h2.yaml").model_dump(mode="json")
    data["gates"]["statistical"]["threshold"] = 1e-12
    return spec_from_mapping(data)


def test_a_refused_promotion_does_not_look_promoted(prefect_server, settings, repo: Path) -> None:
    promoted = promote_experiment(load_spec(repo / "specs" / "vqe-h2.yaml"), return_state=True)
    champion = promoted.result()
    assert isinstance(champion, RunReport) and champion.registered_version == "1"
    spec = _unreachable_statistics(repo)
    state = promote_experiment(spec, return_state=True)
    report = state.result()
    assert isinstance(report, RunReport) and report.decision is not None
    assert not report.decision.promote and report.registered_version is None

    # The runs list: a COMPLETED state named Refused, against the promotion's plain Completed.
    run, artifacts, _ = _flow_run(str(report.prefect_flow_run_id))
    assert run.state is not None and run.state.type.value == "COMPLETED"
    assert run.state.name == "Refused" and "statistical" in str(run.state.message)
    first, _, _ = _flow_run(str(champion.prefect_flow_run_id))
    assert first.state is not None and first.state.name == "Completed"
    assert run.name == "promote vqe-h2 1.0.0"
    assert {"experiment:vqe-h2", "version:1.0.0", "kind:promote",
            "backend:ibm:fake_manila"} <= set(run.tags)

    # The decision artifact: no version registered, the score against the champion's, the
    # MLflow run's page.
    decision = str(artifacts["vqe-h2-decision"].data)
    experiment_id = Tracker.for_settings(settings).experiment_id
    assert "REFUSED" in decision and "| registered version | none (refused) |" in decision
    assert report.decision.champion_score is not None
    assert f"| score | {report.decision.score:.6g} |" in decision
    assert f"| champion's score | {report.decision.champion_score:.6g} |" in decision
    assert report.decision.champion_score == champion.decision.score  # type: ignore[union-attr]
    assert (f"(http://127.0.0.1:{settings.mlflow_port}/#/experiments/{experiment_id}/runs/"
            f"{report.mlflow_run_id})") in decision
    promoted_artifacts = _flow_run(str(champion.prefect_flow_run_id))[1]
    assert "| registered version | 1 |" in str(promoted_artifacts["vqe-h2-decision"].data)


def test_a_run_is_named_tagged_and_summarised_in_a_table(prefect_server, configure,
                                                         repo: Path) -> None:
    # Injected transport losses and result timeouts: retries by class and re-attachments.
    configure(faults="transport=0.15,timeout=0.15,seed=11", submission_retries=8,
              retry_backoff_seconds=0)
    spec = load_spec(repo / "specs" / "vqe-h2.yaml")
    report = run_experiment(spec, RunOptions(backend="ibm:fake_manila"))
    assert isinstance(report, RunReport) and report.execution is not None

    _submissions(str(report.prefect_flow_run_id), set())  # every task run is on the server
    run, artifacts, task_runs = _flow_run(str(report.prefect_flow_run_id))
    assert run.name == "run vqe-h2 1.0.0"
    assert {"experiment:vqe-h2", "version:1.0.0", "kind:run",
            "backend:ibm:fake_manila"} <= set(run.tags)
    # Flow-run tags are not entered as a context: no task run but the provider submissions
    # could take the backend's limit (tested below).
    assert not any("backend:ibm:fake_manila" in t.tags for t in task_runs
                   if not t.name.startswith("submit-job"))

    table = artifacts["vqe-h2-execution"]
    assert table.type == "table"
    rows = {row["metric"]: row["value"] for row in _table(table)}
    submissions = [t for t in task_runs if t.name.startswith("submit-job")]
    # A local engine's submission becomes a task run only when its first attempt fails: every
    # attempt Prefect counts on those task runs is a retry, and the table's retries are those.
    retried = sum(t.run_count for t in submissions)
    assert retried > 0
    retries = {k.removeprefix("retries: "): int(v) for k, v in rows.items()
               if k.startswith("retries: ")}
    assert set(retries) == {"TransportError"} and sum(retries.values()) == retried
    assert 0 < len(submissions) < int(rows["distinct jobs"])
    assert int(rows["re-attachments"]) == report.execution.reattachments > 0
    assert int(rows["provider submissions"]) == report.execution.provider_submissions
    assert rows["breaker trips"] == "0" and rows["fallbacks"] == "0"
    assert float(rows["QPU seconds (estimate)"]) > 0


def _table(artifact: Artifact) -> list[dict[str, str]]:
    import json

    data = artifact.data
    return json.loads(data) if isinstance(data, str) else data  # type: ignore[return-value]


def test_the_service_set_up_limits_each_hardware_backend(prefect_server, configure,
                                                         project_copy: Path, repo: Path) -> None:
    from prefect.exceptions import ObjectNotFound

    from qhybrid_control import policies_from
    from qhybrid_entrypoints._launcher import backend_limits, deploy_service

    (project_copy / "specs").mkdir()
    for name in ("vqe-h2.yaml", "qaoa-maxcut-small.yaml"):
        (project_copy / "specs" / name).write_text((repo / "specs" / name).read_text())
    (project_copy / "specs" / "broken.yaml").write_text("name: [unclosed\n")
    settings = configure(project_root=project_copy, hardware_concurrency=3)
    limits = backend_limits(settings)
    # vqe-h2's target and qaoa-maxcut-small's; its fallback is a simulator (aer-noisy).
    assert limits.limits == {"backend:ibm:fake_lagos": 3, "backend:ibm:fake_manila": 3}
    assert [u.split(":")[0] for u in limits.unread] == ["broken.yaml"]

    try:
        deploy_service(repo, policies_from(settings.sla_policies), {}, limits.limits)
        with get_client(sync_client=True) as client:
            for tag in ("backend:ibm:fake_lagos", "backend:ibm:fake_manila"):
                assert client.read_concurrency_limit_by_tag(tag).concurrency_limit == 3
            try:
                client.read_concurrency_limit_by_tag("backend:aer-noisy:fake_lagos")
                raise AssertionError("a simulator got a hardware limit")
            except ObjectNotFound:
                pass

        # A restart with another limit updates it; 0 sets none.
        deploy_service(repo, policies_from(settings.sla_policies), {},
                       backend_limits(configure(hardware_concurrency=1)).limits)
        with get_client(sync_client=True) as client:
            limit = client.read_concurrency_limit_by_tag("backend:ibm:fake_lagos")
            assert limit.concurrency_limit == 1
        assert backend_limits(configure(hardware_concurrency=0)).limits == {}
    finally:
        _drop_limits("backend:ibm:fake_lagos", "backend:ibm:fake_manila")


def _drop_limits(*tags: str) -> None:
    """Delete the tag concurrency limits ``tags`` on the session's server, if they exist."""
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        for tag in tags:
            with contextlib.suppress(ObjectNotFound):
                client.delete_concurrency_limit_by_tag(tag)


@pytest.mark.slow
def test_only_a_limited_backends_submissions_carry_its_tag(prefect_server, configure,
                                                           repo: Path) -> None:
    # Prefect asks the server for slots of every tag before each task run, limit or not; so a
    # backend's tag goes on its submissions only when a limit exists for it, as the service
    # sets for hardware, and only then is each of a local engine's submissions a task run.
    # The backend is in every submission's name either way.
    configure()
    spec = load_spec(repo / "specs" / "vqe-h2.yaml")
    tag = "backend:ibm:fake_manila"
    _drop_limits(tag)

    def submissions(*names: str) -> set[tuple[str, tuple[str, ...]]]:
        report = run_experiment(spec, RunOptions(backend="ibm:fake_manila"))
        assert isinstance(report, RunReport)
        return _submissions(str(report.prefect_flow_run_id), set(names))

    # Without a limit, a local engine's submissions are no task runs (unless retried).
    assert submissions() == set()
    try:
        with get_client(sync_client=True) as client:
            client.create_concurrency_limit(tag, 2)
        # The run's ideal counts for its manifest come from aer, which has no limit.
        assert submissions(f"submit-job {tag}") == {(f"submit-job {tag}", (tag,))}
    finally:
        _drop_limits(tag)
