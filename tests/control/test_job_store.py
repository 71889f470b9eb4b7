"""The job store and the dispatch plan, on a real SQLite store (PostgreSQL in test_migrations
and the service tests)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence

import pytest

import qhybrid_usecases as usecases
from qhybrid.core import (
    ErrorRecord,
    InvalidInputError,
    JobConflictError,
    JobNotFoundError,
    Settings,
)
from qhybrid_control import (
    DEFAULT_POLICIES,
    DispatchGroup,
    JobFilter,
    JobStore,
    NewJob,
    QueuedJob,
    SlaPolicy,
    class_settings,
    plan_dispatch,
    policies_from,
)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def jobs(settings: Settings, clock: Clock) -> JobStore:
    store = usecases.job_store(settings)
    return JobStore(store.engine, clock=clock)


def _job(*, key: str | None = None, body: str = "a", sla: str = "interactive",
         kind: str = "evaluate", callback: str | None = None,
         experiment: str = "maxcut") -> NewJob:
    return NewJob(id=str(uuid.uuid4()), client="team", kind=kind, sla=sla,
                  experiment=experiment, family=None, backend="aer", idempotency_key=key,
                  request={"request": {"body": body}}, request_sha256=body * 8,
                  trace_id=uuid.uuid4().hex, callback_url=callback)


def test_an_idempotency_key_returns_the_same_job_or_refuses_another_body(
        jobs: JobStore) -> None:
    first, created = jobs.accept(_job(key="k1"))
    again, created_again = jobs.accept(_job(key="k1"))
    assert created and not created_again and again.id == first.id
    with pytest.raises(JobConflictError) as refused:
        jobs.accept(_job(key="k1", body="b"))
    assert refused.value.field == "idempotency_key"
    items, _ = jobs.page(JobFilter(), limit=10, cursor=None)
    assert [j.id for j in items] == [first.id]


def test_transitions_are_recorded_in_order_and_an_ended_job_stays_ended(
        jobs: JobStore, clock: Clock) -> None:
    job, _ = jobs.accept(_job())
    for status in ("validating", "running", "post-processing"):
        clock.now += 1
        jobs.transition(job.id, status)  # type: ignore[arg-type]
    clock.now += 1
    jobs.transition(job.id, "failed", error=ErrorRecord(
        error="ExecutionError", layer="execution", transient=False, message="boom"))
    late = jobs.transition(job.id, "succeeded")
    record = jobs.get(job.id)
    assert late.status == record.status == "failed"
    assert [t.status for t in record.transitions] == [
        "queued", "validating", "running", "post-processing", "failed"]
    assert record.error is not None and record.error.layer == "execution"
    assert [e.status for e in jobs.events(0) if e.job_id == job.id] == [
        "queued", "validating", "running", "post-processing", "failed"]


def test_an_ended_job_with_a_callback_gets_one_delivery(jobs: JobStore) -> None:
    job, _ = jobs.accept(_job(callback="http://127.0.0.1:9/hook"))
    jobs.transition(job.id, "running")
    assert jobs.due_deliveries() == []
    jobs.transition(job.id, "succeeded", result={"x": 1})
    jobs.transition(job.id, "succeeded")  # a second end changes nothing
    due = jobs.due_deliveries()
    assert [(d.job_id, d.url, d.attempts) for d in due] == [
        (job.id, "http://127.0.0.1:9/hook", 0)]
    assert '"status":"succeeded"' in due[0].body


def test_only_one_dispatcher_claims_a_job(jobs: JobStore) -> None:
    ids = [jobs.accept(_job())[0].id for _ in range(3)]
    won = jobs.claim(ids, "dispatch-1")
    assert sorted(won) == sorted(ids)
    assert jobs.claim(ids, "dispatch-2") == []
    assert jobs.queued() == []


def test_cancelling_a_queued_job_ends_it_and_a_dispatched_one_is_marked(
        jobs: JobStore) -> None:
    queued, _ = jobs.accept(_job())
    assert jobs.request_cancel(queued.id).status == "cancelled"
    dispatched, _ = jobs.accept(_job())
    jobs.claim([dispatched.id], "d")
    record = jobs.request_cancel(dispatched.id)
    assert record.status == "queued" and jobs.cancel_requested(dispatched.id)
    with pytest.raises(JobNotFoundError):
        jobs.request_cancel("no-such-job")


def test_paging_walks_every_job_once_newest_first(jobs: JobStore, clock: Clock) -> None:
    made = []
    for i in range(23):
        clock.now += 0.5 if i % 3 else 0  # equal timestamps too: the id breaks ties
        made.append(jobs.accept(_job(sla="batch-research" if i % 2 else "interactive"))[0])
    seen, cursor = [], None
    for _ in range(5):
        items, cursor = jobs.page(JobFilter(), limit=10, cursor=cursor)
        seen += items
        if cursor is None:
            break
    assert len(seen) == 23 and len({j.id for j in seen}) == 23
    created = [(j.created_at, j.id) for j in seen]
    assert created == sorted(created, reverse=True)
    batch, _ = jobs.page(JobFilter(sla="batch-research"), limit=50, cursor=None)
    assert {j.id for j in batch} == {j.id for j in made if j.sla == "batch-research"}
    with pytest.raises(InvalidInputError) as forged:
        jobs.page(JobFilter(), limit=10, cursor="not-a-cursor")
    assert forged.value.field == "cursor"


def _queued(sla: str, created: float, kind: str = "evaluate", experiment: str = "m") -> QueuedJob:
    return QueuedJob(id=str(uuid.uuid4()), kind=kind, sla=sla, backend="aer", family=None,
                     experiment=experiment, created=created, trace_id="0" * 31 + "1")


def test_the_plan_batches_by_window_and_size_most_urgent_class_first() -> None:
    now = 1000.0
    interactive = [_queued("interactive", now - 0.1)]
    fresh_batch = [_queued("batch-research", now - 1) for _ in range(3)]
    ripe_batch = [_queued("batch-research", now - 60, experiment="other")]
    plan = plan_dispatch([*fresh_batch, *ripe_batch, *interactive], DEFAULT_POLICIES, now=now)
    assert [(g.sla, len(g.jobs)) for g in plan] == [("interactive", 1), ("batch-research", 1)]
    many = [_queued("batch-research", now - 1) for _ in range(300)]
    plan = plan_dispatch(many, DEFAULT_POLICIES, now=now)
    assert [len(g.jobs) for g in plan] == [256]  # a full batch goes; the rest waits its window
    runs = [_queued("interactive", now, kind="run") for _ in range(3)]
    assert [len(g.jobs) for g in plan_dispatch(runs, DEFAULT_POLICIES, now=now)] == [1, 1, 1]


def test_sla_overrides_are_validated_and_name_the_setting() -> None:
    policies = policies_from('{"batch-research": {"window_seconds": 30}}')
    assert policies["batch-research"].window_seconds == 30
    assert policies["interactive"] == DEFAULT_POLICIES["interactive"]
    for bad in ('{"gold": {}}', '{"interactive": {"priority": 0}}', "[1]", "{",
                '{"interactive": {"colour": "red"}}'):
        with pytest.raises(InvalidInputError) as refused:
            policies_from(bad)
        assert refused.value.field == "QHYBRID_SLA_POLICIES"


def test_a_class_policy_is_checked_as_a_whole_and_names_the_setting() -> None:
    policies = policies_from('{"interactive": {"on_long_queue": "asynchronous"}}')
    assert policies["interactive"].asynchronous_class == "batch-research"
    for bad, where in (
            ('{"interactive": {"on_long_queue": "later"}}', "interactive.on_long_queue"),
            ('{"near-real-time": {"on_long_queue": "asynchronous"}}', "near-real-time"),
            ('{"interactive": {"on_long_queue": "asynchronous", '
             '"asynchronous_class": "gold"}}', "interactive.asynchronous_class"),
            ('{"interactive": {"on_long_queue": "asynchronous", '
             '"asynchronous_class": "interactive"}}', "interactive.asynchronous_class"),
            ('{"interactive": {"on_long_queue": "asynchronous"}, "batch-research": '
             '{"on_long_queue": "asynchronous", "asynchronous_class": "interactive"}}',
             "interactive.asynchronous_class"),
            ('{"batch-research": {"submission_retries": -1}}',
             "batch-research.submission_retries"),
            ('{"interactive": {"retry_backoff_seconds": "soon"}}',
             "interactive.retry_backoff_seconds")):
        with pytest.raises(InvalidInputError) as refused:
            policies_from(bad)
        assert refused.value.field == "QHYBRID_SLA_POLICIES", bad
        assert refused.value.message.startswith(where), refused.value.message


def test_class_settings_take_the_class_retries_where_it_sets_them() -> None:
    settings = Settings(submission_retries=4, retry_backoff_seconds=2,
                        sla_policies='{"interactive": {"retry_backoff_seconds": null}}')
    interactive = class_settings(settings, "interactive")
    assert (interactive.submission_retries, interactive.retry_backoff_seconds) == (1, 2)
    near = class_settings(settings, "near-real-time")
    assert (near.submission_retries, near.retry_backoff_seconds) == (4, 2)
    batch = class_settings(settings, "batch-research")
    assert (batch.submission_retries, batch.retry_backoff_seconds) == (6, 5)
    assert batch.state_store_url == settings.state_store_url
    with pytest.raises(InvalidInputError) as refused:
        class_settings(settings, "gold")
    assert refused.value.field == "sla"


def test_a_job_handed_over_is_queued_again_under_its_new_class(jobs: JobStore,
                                                              clock: Clock) -> None:
    job, _ = jobs.accept(_job(sla="interactive"))
    jobs.claim([job.id], "d-1")
    jobs.started("d-1", [job.id], "flow-run-1", sla="interactive", kind="evaluate",
                 backend="aer", family=None)
    jobs.transition(job.id, "waiting-backend", sub_status="ibm:ibm_torino")
    clock.now += 1
    why = "delivered asynchronously (batch-research): ibm:ibm_torino has 57 jobs queued"
    record = jobs.hand_over(job.id, "batch-research", reason=why)

    assert record == jobs.get(job.id)
    assert (record.status, record.sla, record.sub_status, record.downgrade) == (
        "queued", "batch-research", why, why)
    assert record.prefect_flow_run_id is None and record.dispatch_attempts == 1
    assert [(t.status, t.sub_status) for t in record.transitions][-1] == ("queued", why)
    assert [(e.status, e.sub_status) for e in jobs.events(0) if e.job_id == job.id][-1] == (
        "queued", why)
    assert jobs.active() == []  # no flow run has it: the dispatcher serves it again
    assert [(j.id, j.sla) for j in jobs.queued()] == [(job.id, "batch-research")]
    clock.now += DEFAULT_POLICIES["batch-research"].window_seconds
    [group] = plan_dispatch(jobs.queued(), DEFAULT_POLICIES, now=clock())
    assert (group.sla, group.job_ids) == ("batch-research", [job.id])


def test_a_job_cancelled_before_its_hand_over_is_cancelled(jobs: JobStore) -> None:
    job, _ = jobs.accept(_job(sla="interactive", callback="http://127.0.0.1:9/hook"))
    jobs.claim([job.id], "d-1")
    jobs.request_cancel(job.id)
    record = jobs.hand_over(job.id, "batch-research", reason="delivered asynchronously")
    assert (record.status, record.sla, record.downgrade) == ("cancelled", "interactive", None)
    assert jobs.queued() == [] and [d.job_id for d in jobs.due_deliveries()] == [job.id]


class _CrashingOrchestrator:
    """Prefect as seen by the dispatcher, with flow runs that crash on purpose."""

    def __init__(self) -> None:
        self.launched: list[list[str]] = []
        self.state: dict[str, str | None] = {}
        self.ids = itertools.count()

    def launch(self, group: DispatchGroup, policy: SlaPolicy, dispatch_id: str) -> str:
        run = f"flow-run-{next(self.ids)}"
        self.launched.append(group.job_ids)
        self.state[run] = "RUNNING"
        return run

    def states(self, flow_run_ids: Sequence[str]) -> Mapping[str, str | None]:
        return {i: self.state.get(i) for i in flow_run_ids}

    def cancel(self, flow_run_id: str) -> None:
        self.state[flow_run_id] = "CANCELLED"


def test_jobs_of_a_crashed_flow_run_are_dispatched_again_then_failed(
        jobs: JobStore, clock: Clock) -> None:
    orchestrator = _CrashingOrchestrator()
    job, _ = jobs.accept(_job(kind="run"))
    limit = DEFAULT_POLICIES["interactive"].max_dispatch_attempts
    for attempt in range(1, limit + 1):
        report = usecases.dispatch_once(jobs, orchestrator, DEFAULT_POLICIES, now=clock())
        assert len(report.started) == 1, attempt
        assert jobs.get(job.id).dispatch_attempts == attempt
        orchestrator.state[report.started[0][0]] = "CRASHED"
        clock.now += 1
    report = usecases.dispatch_once(jobs, orchestrator, DEFAULT_POLICIES, now=clock())
    record = jobs.get(job.id)
    assert report.failed == [job.id] and report.started == []
    assert record.status == "failed" and record.error is not None
    assert record.error.layer == "orchestration"
    assert len(orchestrator.launched) == limit


def test_a_claim_without_a_flow_run_is_released_after_its_dispatcher_died(
        jobs: JobStore, clock: Clock) -> None:
    orchestrator = _CrashingOrchestrator()
    job, _ = jobs.accept(_job())
    jobs.claim([job.id], "dead-dispatcher")
    assert usecases.dispatch_once(jobs, orchestrator, DEFAULT_POLICIES,
                                  now=clock()).started == []
    clock.now += 120
    report = usecases.dispatch_once(jobs, orchestrator, DEFAULT_POLICIES, now=clock())
    assert report.requeued == [job.id] and len(report.started) == 1


def test_a_cancel_requested_job_whose_flow_run_ended_is_cancelled(
        jobs: JobStore, clock: Clock) -> None:
    orchestrator = _CrashingOrchestrator()
    job, _ = jobs.accept(_job(kind="run"))
    run = usecases.dispatch_once(jobs, orchestrator, DEFAULT_POLICIES, now=clock()).started[0][0]
    jobs.request_cancel(job.id)
    orchestrator.cancel(run)
    usecases.dispatch_once(jobs, orchestrator, DEFAULT_POLICIES, now=clock())
    assert jobs.get(job.id).status == "cancelled"
    assert len(orchestrator.launched) == 1


def test_a_class_with_every_slot_busy_keeps_its_jobs_queued(jobs: JobStore,
                                                            clock: Clock) -> None:
    orchestrator = _CrashingOrchestrator()
    made = [jobs.accept(_job(kind="run"))[0] for _ in range(3)]
    report = usecases.dispatch_once(jobs, orchestrator, DEFAULT_POLICIES, now=clock())
    assert len(report.started) == DEFAULT_POLICIES["interactive"].concurrency == 2
    assert [j.id for j in jobs.queued()] == [made[2].id]
    first_run = report.started[0][0]
    for job_id in orchestrator.launched[0]:
        jobs.transition(job_id, "succeeded")
    orchestrator.state[first_run] = "COMPLETED"
    report = usecases.dispatch_once(jobs, orchestrator, DEFAULT_POLICIES, now=clock())
    assert [n for _, n in report.started] == [1] and jobs.queued() == []


def test_a_warm_flow_run_claims_the_evaluations_queued_meanwhile(jobs: JobStore,
                                                                 clock: Clock) -> None:
    served, _ = jobs.accept(_job())
    jobs.claim([served.id], "first-dispatch")
    jobs.started("first-dispatch", [served.id], "warm-run", sla="interactive", kind="evaluate",
                 backend="aer", family=None)
    work = usecases.JobWork(job_id=served.id, kind="evaluate", sla="interactive",
                            trace_id=served.trace_id, spec=None, options=None, evaluate=None)
    later = [jobs.accept(_job())[0].id for _ in range(3)]
    other_class = jobs.accept(_job(sla="batch-research"))[0].id
    claimed = usecases.claim_more(jobs, work, DEFAULT_POLICIES, flow_run_id="warm-run",
                                  now=clock())
    assert sorted(claimed) == sorted(later)
    assert {jobs.get(i).prefect_flow_run_id for i in claimed} == {"warm-run"}
    assert [j.id for j in jobs.queued()] == [other_class]
    one_each = policies_from('{"interactive": {"max_batch": 1}}')
    jobs.accept(_job())
    assert usecases.claim_more(jobs, work, one_each, flow_run_id="warm-run", now=clock()) == []
