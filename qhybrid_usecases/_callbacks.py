"""Webhook delivery: call back each ended job's URL, signed, retried with backoff.

The job store holds each delivery and its attempts, so a restarted service delivers what is
still due; receivers de-duplicate by the ``X-Qhybrid-Event-Id`` header.
"""

from __future__ import annotations

import random

import httpx

from qhybrid.core import InvalidInputError, Settings, WebhookAttemptRecord
from qhybrid_control import JobStore, backoff_delay, deliver, iso

MAX_BACKOFF_SECONDS = 300.0


def deliver_due(jobs: JobStore, settings: Settings, client: httpx.Client,
                rng: random.Random) -> list[WebhookAttemptRecord]:
    """Make one attempt at every due callback; schedule the next or end the delivery.

    Returns:
        The attempts made.
    """
    made = []
    for due in jobs.due_deliveries():
        number = due.attempts + 1
        secret = settings.client_secrets.get(due.client)
        if secret is None:  # the operator removed the client's secret since the job was taken
            record = WebhookAttemptRecord(attempt=number, at=iso(jobs.clock()), delivered=False,
                                          error=f"no webhook secret for client '{due.client}'")
            jobs.record_attempt(due.id, record, next_at=None)
            made.append(record)
            continue
        try:
            attempt = deliver(client, due.url, due.body.encode(), secret=secret, attempt=number,
                              trace_id=due.trace_id, event_id=due.id)
        except InvalidInputError as exc:  # no retry can send it: end it, go on with the rest
            record = WebhookAttemptRecord(attempt=number, at=iso(jobs.clock()), delivered=False,
                                          error=exc.message)
            jobs.record_attempt(due.id, record, next_at=None)
            made.append(record)
            continue
        record = WebhookAttemptRecord(attempt=number, at=iso(attempt.at),
                                      status_code=attempt.status_code, error=attempt.error,
                                      delivered=attempt.delivered)
        last = attempt.delivered or number >= settings.webhook_max_attempts
        next_at = None if last else jobs.clock() + backoff_delay(
            number, base=max(settings.webhook_backoff_seconds, 1e-3), cap=MAX_BACKOFF_SECONDS,
            rng=rng)
        jobs.record_attempt(due.id, record, next_at=next_at)
        made.append(record)
    return made
