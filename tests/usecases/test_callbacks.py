"""Callbacks as the dispatcher delivers them: signed, retried with backoff, each attempt stored
with the job, so that another process (a restarted dispatcher) carries on where one stopped."""

from __future__ import annotations

import json
import random
import uuid

import httpx
import pytest

import qhybrid_usecases as usecases
from qhybrid.core import EvaluateJobRequest, InvalidInputError, Settings, load_settings
from qhybrid_control import JobFilter, JobStore, NewJob
from tests.control.test_job_store import Clock
from tests.control.test_webhooks import SECRET, Receiver, receiver  # noqa: F401 - the fixture


def _rng(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - backoff jitter, not a secret


def _settings(settings: Settings, **more: str) -> Settings:
    return load_settings({"QHYBRID_STATE_URL": settings.state_store_url,
                          "QHYBRID_WEBHOOK_SECRETS": f"team={SECRET.decode()}", **more})


def _ended_job(jobs: JobStore, url: str) -> str:
    job, _ = jobs.accept(NewJob(
        id=str(uuid.uuid4()), client="team", kind="evaluate", sla="interactive",
        experiment="m", family=None, backend="aer", idempotency_key=None,
        request={"request": {}}, request_sha256="0" * 64, trace_id=uuid.uuid4().hex,
        callback_url=url))
    jobs.transition(job.id, "succeeded", result={"values": [1.0]})
    return job.id


def test_a_callback_is_signed_and_delivered_once(settings: Settings,
                                                 receiver: Receiver) -> None:  # noqa: F811
    config = _settings(settings)
    jobs = JobStore(usecases.job_store(config).engine)
    job_id = _ended_job(jobs, f"{receiver.base_url}/hook")
    with httpx.Client(timeout=10) as client:
        made = usecases.deliver_due(jobs, config, client, _rng(1))
        again = usecases.deliver_due(jobs, config, client, _rng(1))
    assert [(a.attempt, a.delivered, a.status_code) for a in made] == [(1, True, 204)]
    assert again == []
    record = jobs.get(job_id)
    assert record.webhook is not None and record.webhook.state == "delivered"
    seen = [s for s in receiver.seen if json.loads(s.body).get("id") == job_id]
    assert [s.verdict for s in seen] == ["ok"]
    assert seen[0].headers["x-qhybrid-trace-id"] == record.trace_id


def test_failed_attempts_are_stored_and_another_process_carries_on(
        settings: Settings, receiver: Receiver) -> None:  # noqa: F811
    config = _settings(settings, QHYBRID_WEBHOOK_MAX_ATTEMPTS="3",
                       QHYBRID_WEBHOOK_BACKOFF_SECONDS="10")
    clock = Clock()
    first = JobStore(usecases.job_store(config).engine, clock=clock)
    job_id = _ended_job(first, f"{receiver.base_url}/fail")
    with httpx.Client(timeout=10) as client:
        made = usecases.deliver_due(first, config, client, _rng(7))
        assert [(a.attempt, a.delivered, a.status_code) for a in made] == [(1, False, 500)]
        assert usecases.deliver_due(first, config, client, _rng(7)) == []  # backing off

        # "Restart": a new store object, as a new dispatcher process would open it.
        clock.now += 20  # past the first backoff ceiling (10 s x 2)
        second = JobStore(usecases.job_store(config).engine, clock=clock)
        assert [a.attempt for a in usecases.deliver_due(second, config, client,
                                                        _rng(7))] == [2]
        clock.now += 40
        assert [a.attempt for a in usecases.deliver_due(second, config, client,
                                                        _rng(7))] == [3]
        clock.now += 1000
        assert usecases.deliver_due(second, config, client, _rng(7)) == []  # gave up
    webhook = second.get(job_id).webhook
    assert webhook is not None and webhook.state == "failed"
    assert [(a.attempt, a.status_code) for a in webhook.attempts] == [(1, 500), (2, 500),
                                                                      (3, 500)]


def test_a_client_without_a_secret_is_refused_at_accept(settings: Settings) -> None:
    config = _settings(settings)
    jobs = usecases.job_store(config)
    request = EvaluateJobRequest(kind="evaluate", model="m@champion",
                                 callback_url="http://127.0.0.1:9/hook")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError) as refused:
        usecases.accept_job(jobs, config, request, client="stranger")
    assert refused.value.field == "callback_url"
    assert jobs.page(JobFilter(), limit=5, cursor=None)[0] == []
