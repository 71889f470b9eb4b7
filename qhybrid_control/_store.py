"""The durable job store: accept, claim, transition, cancel, page and stream jobs.

It shares the state store's engine (one database for the ledger, leases and jobs). Every
write that changes a job also appends its event (and, when the job ends with a callback URL,
its webhook delivery) in the same transaction, so nothing a client was told can be lost.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Executable,
    Row,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from qhybrid.core import (
    TERMINAL_STATUSES,
    ErrorRecord,
    JobConflictError,
    JobNotFoundError,
    JobRecord,
    JobStatus,
    JobTransition,
    TrackingError,
    WebhookAttemptRecord,
    WebhookRecord,
    WebhookState,
)
from qhybrid_control._job_rows import (
    ActiveJob,
    DueDelivery,
    JobEvent,
    JobFilter,
    NewJob,
    QueuedJob,
    decode_cursor,
    encode_cursor,
    iso,
)
from qhybrid_control._tables import (
    DISPATCHES,
    JOB_EVENTS,
    JOB_RESULTS,
    JOBS,
    WEBHOOK_DELIVERIES,
)

# What a result stored by reference leaves out of its job row.
_BY_REFERENCE = frozenset({"values", "samples", "metrics", "report"})

# Built once: a statement made per call costs more to build and cache-key than to run.
_INSERT_JOB = insert(JOBS)
_INSERT_EVENT = insert(JOB_EVENTS)


class JobStore:
    """Jobs, their events and their callbacks, in the state store's database.

    Args:
        engine: The state store's engine (its migrations create the tables).
        clock: Unix time; tests pass their own.
        inline_max_bytes: A result document larger than this (as JSON) is stored in
            ``job_results``, and the job row keeps a summary that refers to it.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time,
                 inline_max_bytes: int = 256 * 1024) -> None:
        self.engine = engine
        self.clock = clock
        self.inline_max_bytes = inline_max_bytes
        self.postgres = engine.dialect.name == "postgresql"

    # -- accept --------------------------------------------------------------------------

    def accept(self, job: NewJob) -> tuple[JobRecord, bool]:
        """Store a new job and its first event in one transaction.

        Returns:
            The job, and whether it was created (False: the idempotency key's earlier job).

        Raises:
            JobConflictError: The key names a job with a different request.
            TrackingError: The store cannot be written.
        """
        now = self.clock()
        transitions = [{"status": "queued", "sub_status": None, "at": iso(now)}]
        row = {
            "id": job.id, "client": job.client, "kind": job.kind, "status": "queued",
            "sla": job.sla, "experiment": job.experiment, "family": job.family,
            "backend": job.backend, "idempotency_key": job.idempotency_key,
            "request_sha256": job.request_sha256,
            "request": json.dumps(job.request, separators=(",", ":")),
            "trace_id": job.trace_id, "callback_url": job.callback_url, "created": now,
            "updated": now, "transitions": json.dumps(transitions), "provider_job_ids": "[]",
            "dispatch_attempts": 0, "cancel_requested": 0,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(_INSERT_JOB, row)
                conn.execute(_INSERT_EVENT, {"job_id": job.id, "status": "queued", "at": now})
        except IntegrityError:
            if job.idempotency_key is None:
                raise
            return self._existing(job), False
        except SQLAlchemyError as exc:
            raise TrackingError(f"job store write failed: {exc}") from exc
        return self._record(row), True

    def _existing(self, job: NewJob) -> JobRecord:
        rows = self._read(select(JOBS).where(and_(
            JOBS.c.client == job.client, JOBS.c.idempotency_key == job.idempotency_key)))
        if not rows:  # the conflicting row was not an idempotency key: a real integrity error
            raise TrackingError(f"job {job.id} could not be stored")
        existing = rows[0]._mapping
        if existing["request_sha256"] != job.request_sha256:
            raise JobConflictError(
                f"idempotency key '{job.idempotency_key}' already names job {existing['id']} "
                "with a different request; use a new key for a new request",
                field="idempotency_key")
        return self._record(existing)

    # -- read ----------------------------------------------------------------------------

    def _read(self, statement: Executable) -> list[Row[Any]]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(statement))
        except SQLAlchemyError as exc:
            raise TrackingError(f"job store read failed: {exc}") from exc

    def get(self, job_id: str) -> JobRecord:
        """The job ``job_id``.

        Raises:
            JobNotFoundError: No job has that id.
        """
        rows = self._read(select(JOBS).where(JOBS.c.id == job_id))
        if not rows:
            raise JobNotFoundError(f"no job {job_id}", field="id")
        record = self._record(rows[0]._mapping)
        if record.webhook is not None:
            record = record.model_copy(update={"webhook": self.webhook_of(job_id)
                                               or record.webhook})
        return record

    def request_of(self, job_id: str) -> dict[str, Any]:
        """The request of ``job_id`` as accepted (its spec resolved inline)."""
        rows = self._read(select(JOBS.c.request).where(JOBS.c.id == job_id))
        if not rows:
            raise JobNotFoundError(f"no job {job_id}", field="id")
        request: dict[str, Any] = json.loads(rows[0][0])
        return request

    def result_of(self, job_id: str) -> dict[str, Any] | None:
        """The stored result document of ``job_id``, if it has one."""
        rows = self._read(select(JOBS.c.result).where(JOBS.c.id == job_id))
        if not rows:
            raise JobNotFoundError(f"no job {job_id}", field="id")
        return None if rows[0][0] is None else dict(json.loads(rows[0][0]))

    def result_data(self, job_id: str) -> tuple[str, str, str] | None:
        """The full result document of ``job_id`` stored by reference, if it has one: its
        JSON text, SHA-256 and media type."""
        rows = self._read(select(JOB_RESULTS.c.body, JOB_RESULTS.c.sha256,
                                 JOB_RESULTS.c.media_type).where(JOB_RESULTS.c.job_id == job_id))
        return None if not rows else (rows[0][0], rows[0][1], rows[0][2])

    def page(self, where: JobFilter, *, limit: int, cursor: str | None) -> tuple[
            list[JobRecord], str | None]:
        """Jobs newest first, ``limit`` at a time; the cursor continues after the last one.

        Raises:
            InvalidInputError: A cursor this store did not issue.
        """
        query = select(JOBS)
        for column, value in (("status", where.status), ("kind", where.kind),
                              ("sla", where.sla), ("experiment", where.experiment)):
            if value is not None:
                query = query.where(JOBS.c[column] == value)
        if where.since is not None:
            query = query.where(JOBS.c.created >= where.since)
        if cursor is not None:
            created, last_id = decode_cursor(cursor)
            query = query.where(or_(JOBS.c.created < created,
                                    and_(JOBS.c.created == created, JOBS.c.id < last_id)))
        rows = self._read(query.order_by(JOBS.c.created.desc(), JOBS.c.id.desc())
                          .limit(limit + 1))
        items = [self._record(r._mapping) for r in rows[:limit]]
        more = len(rows) > limit
        last = rows[limit - 1]._mapping if more else None
        return items, (encode_cursor(last["created"], last["id"]) if last else None)

    def events(self, after: int, *, limit: int = 500) -> list[JobEvent]:
        """Status transitions after event ``after``, oldest first."""
        rows = self._read(select(JOB_EVENTS).where(JOB_EVENTS.c.id > after)
                          .order_by(JOB_EVENTS.c.id).limit(limit))
        return [JobEvent(id=r.id, job_id=r.job_id, status=r.status, sub_status=r.sub_status,
                         at=r.at) for r in rows]

    def last_event_id(self) -> int:
        """The newest event's id (0 when there is none)."""
        rows = self._read(select(func.max(JOB_EVENTS.c.id)))
        return int(rows[0][0] or 0)

    # -- dispatch ------------------------------------------------------------------------

    def queued(self, *, limit: int = 1000) -> list[QueuedJob]:
        """Queued jobs no dispatcher has claimed, oldest first."""
        rows = self._read(
            select(JOBS.c.id, JOBS.c.kind, JOBS.c.sla, JOBS.c.backend, JOBS.c.family,
                   JOBS.c.experiment, JOBS.c.created, JOBS.c.trace_id)
            .where(and_(JOBS.c.status == "queued", JOBS.c.dispatch_id.is_(None),
                        JOBS.c.cancel_requested == 0))
            .order_by(JOBS.c.created).limit(limit))
        return [QueuedJob(id=r.id, kind=r.kind, sla=r.sla, backend=r.backend, family=r.family,
                          experiment=r.experiment, created=r.created, trace_id=r.trace_id)
                for r in rows]

    def claim(self, job_ids: Sequence[str], dispatch_id: str) -> list[str]:
        """Claim the jobs still queued and unclaimed for ``dispatch_id``; return those won.

        On PostgreSQL the candidate rows are locked with ``SKIP LOCKED`` so two dispatchers
        never wait on each other; on SQLite the write lock serialises claims.
        """
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                candidates = (select(JOBS.c.id).where(and_(
                    JOBS.c.id.in_(list(job_ids)), JOBS.c.status == "queued",
                    JOBS.c.dispatch_id.is_(None), JOBS.c.cancel_requested == 0)))
                if self.postgres:
                    candidates = candidates.with_for_update(skip_locked=True)
                won = [r[0] for r in conn.execute(candidates)]
                if won:
                    conn.execute(update(JOBS).where(JOBS.c.id.in_(won))
                                 .values(dispatch_id=dispatch_id, updated=now))
        except SQLAlchemyError as exc:
            raise TrackingError(f"job store claim failed: {exc}") from exc
        return won

    def started(self, dispatch_id: str, job_ids: Sequence[str], flow_run_id: str, *,
                sla: str, kind: str, backend: str | None, family: str | None) -> None:
        """Record the flow run started for a claimed group."""
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                conn.execute(update(JOBS).where(and_(
                    JOBS.c.id.in_(list(job_ids)), JOBS.c.dispatch_id == dispatch_id))
                    .values(flow_run_id=flow_run_id, updated=now,
                            dispatch_attempts=JOBS.c.dispatch_attempts + 1))
                conn.execute(insert(DISPATCHES).values(
                    id=dispatch_id, sla=sla, kind=kind, backend=backend, family=family,
                    size=len(job_ids), flow_run_id=flow_run_id, created=now))
        except SQLAlchemyError as exc:
            raise TrackingError(f"job store write failed: {exc}") from exc

    def active(self) -> list[ActiveJob]:
        """Claimed jobs that have not ended."""
        rows = self._read(select(JOBS).where(and_(
            JOBS.c.status.not_in(list(TERMINAL_STATUSES)), JOBS.c.dispatch_id.is_not(None))))
        return [ActiveJob(id=r.id, status=r.status, sla=r.sla, flow_run_id=r.flow_run_id,
                          dispatch_id=r.dispatch_id, dispatch_attempts=r.dispatch_attempts,
                          cancel_requested=bool(r.cancel_requested), updated=r.updated)
                for r in rows]

    def requeue(self, job_id: str, reason: str) -> None:
        """Put a job whose flow run ended without ending it back in the queue."""
        self._change(job_id, "queued", sub_status=reason, fields={
            "dispatch_id": None, "flow_run_id": None})

    def hand_over(self, job_id: str, sla: str, *, reason: str) -> JobRecord:
        """Queue a job again under class ``sla``, for that class's dispatcher to serve later
        (asynchronous delivery), in one transaction with its event.

        ``reason`` becomes the job's sub-status and its ``downgrade``. A job someone asked to
        cancel meanwhile is cancelled instead; a job that has ended stays as it ended.

        Raises:
            JobNotFoundError: No job has that id.
        """
        return self._change(job_id, "queued", sub_status=reason, fields={
            "sla": sla, "downgrade": reason, "dispatch_id": None, "flow_run_id": None},
            if_cancel_requested=f"cancelled before its hand-over to {sla}")

    # -- transitions ---------------------------------------------------------------------

    def transition(self, job_id: str, status: JobStatus, *, sub_status: str | None = None,
                   error: ErrorRecord | None = None, result: dict[str, Any] | None = None,
                   mlflow_run_id: str | None = None, provider_job_ids: Iterable[str] = (),
                   downgrade: str | None = None, metrics: dict[str, Any] | None = None,
                   flow_run_id: str | None = None) -> JobRecord:
        """Move a job to ``status`` (a job that has ended stays as it ended).

        Raises:
            JobNotFoundError: No job has that id.
        """
        fields: dict[str, Any] = {}
        large: dict[str, Any] | None = None
        if error is not None:
            fields["error"] = error.model_dump_json()
        if result is not None:
            fields["result"], large = self._result_fields(job_id, result)
        if mlflow_run_id is not None:
            fields["mlflow_run_id"] = mlflow_run_id
        if downgrade is not None:
            fields["downgrade"] = downgrade
        if metrics is not None:
            fields["metrics"] = json.dumps(metrics)
        if flow_run_id is not None:
            fields["flow_run_id"] = flow_run_id
        return self._change(job_id, status, sub_status=sub_status, fields=fields,
                            provider_job_ids=tuple(provider_job_ids), large_result=large)

    def _result_fields(self, job_id: str, result: dict[str, Any]
                       ) -> tuple[str, dict[str, Any] | None]:
        """The job row's result text, and the ``job_results`` row when the document is too
        large to embed (the row then keeps a summary: the document without its values,
        samples, metrics and report, and a ``data`` reference to the whole)."""
        text = json.dumps(result, separators=(",", ":"))
        size = len(text.encode())
        if size <= self.inline_max_bytes:
            return text, None
        sha256 = hashlib.sha256(text.encode()).hexdigest()
        summary = {k: v for k, v in result.items() if k not in _BY_REFERENCE}
        summary["data"] = {"href": f"/v1/jobs/{job_id}/result/data",
                           "media_type": "application/json", "bytes": size, "sha256": sha256}
        row = {"job_id": job_id, "media_type": "application/json", "body": text,
               "bytes": size, "sha256": sha256, "created": self.clock()}
        return json.dumps(summary, separators=(",", ":")), row

    def _change(self, job_id: str, status: str, *, sub_status: str | None,
                fields: dict[str, Any], provider_job_ids: tuple[str, ...] = (),
                if_cancel_requested: str | None = None,
                large_result: dict[str, Any] | None = None) -> JobRecord:
        """Move a job; with ``if_cancel_requested``, a job someone asked to cancel is
        cancelled instead, with that sub-status (decided under the row's lock). A
        ``large_result`` row is stored with the change, or not at all."""
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                row = self._lock(conn, job_id)
                if row["status"] in TERMINAL_STATUSES:
                    return self._record(row)
                if if_cancel_requested is not None and row["cancel_requested"]:
                    status, sub_status, fields = "cancelled", if_cancel_requested, {}
                    large_result = None
                if large_result is not None:
                    conn.execute(delete(JOB_RESULTS).where(JOB_RESULTS.c.job_id == job_id))
                    conn.execute(insert(JOB_RESULTS).values(**large_result))
                values = dict(fields, status=status, sub_status=sub_status, updated=now)
                if status != row["status"] or sub_status != row["sub_status"]:
                    history = json.loads(row["transitions"])
                    history.append({"status": status, "sub_status": sub_status, "at": iso(now)})
                    values["transitions"] = json.dumps(history)
                    conn.execute(insert(JOB_EVENTS).values(
                        job_id=job_id, status=status, sub_status=sub_status, at=now))
                if provider_job_ids:
                    known = json.loads(row["provider_job_ids"])
                    values["provider_job_ids"] = json.dumps(
                        known + [p for p in provider_job_ids if p not in known])
                conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(**values))
                merged = {**row, **values}
                record = self._record(merged)
                if status in TERMINAL_STATUSES and row["callback_url"]:
                    conn.execute(insert(WEBHOOK_DELIVERIES).values(
                        id=str(uuid.uuid4()), job_id=job_id, client=row["client"],
                        url=row["callback_url"], body=record.model_dump_json(),
                        trace_id=row["trace_id"], state="pending", attempts="[]",
                        next_at=now, created=now))
                    record = self._record(merged, webhook_state="pending")
                return record
        except SQLAlchemyError as exc:
            raise TrackingError(f"job store write failed: {exc}") from exc

    def _lock(self, conn: Connection, job_id: str) -> dict[str, Any]:
        query = select(JOBS).where(JOBS.c.id == job_id)
        if self.postgres:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise JobNotFoundError(f"no job {job_id}", field="id")
        return dict(row._mapping)

    def request_cancel(self, job_id: str) -> JobRecord:
        """Cancel a job: at once if no flow run has it yet, else mark it for its flow run
        (and the caller cancels that flow run).

        Raises:
            JobNotFoundError: No job has that id.
        """
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                row = self._lock(conn, job_id)
                if row["status"] in TERMINAL_STATUSES:
                    return self._record(row)
                conn.execute(update(JOBS).where(JOBS.c.id == job_id)
                             .values(cancel_requested=1, updated=now))
        except SQLAlchemyError as exc:
            raise TrackingError(f"job store write failed: {exc}") from exc
        if row["dispatch_id"] is None:
            return self._change(job_id, "cancelled", sub_status="cancelled before dispatch",
                                fields={})
        return self.get(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        """Whether someone asked to cancel ``job_id``."""
        rows = self._read(select(JOBS.c.cancel_requested).where(JOBS.c.id == job_id))
        return bool(rows and rows[0][0])

    # -- webhooks ------------------------------------------------------------------------

    def due_deliveries(self, *, limit: int = 50) -> list[DueDelivery]:
        """Pending callbacks whose next attempt is due."""
        rows = self._read(select(WEBHOOK_DELIVERIES).where(and_(
            WEBHOOK_DELIVERIES.c.state == "pending",
            WEBHOOK_DELIVERIES.c.next_at <= self.clock()))
            .order_by(WEBHOOK_DELIVERIES.c.next_at).limit(limit))
        return [DueDelivery(id=r.id, job_id=r.job_id, client=r.client, url=r.url, body=r.body,
                            trace_id=r.trace_id, attempts=len(json.loads(r.attempts)))
                for r in rows]

    def record_attempt(self, delivery_id: str, attempt: WebhookAttemptRecord, *,
                       next_at: float | None) -> None:
        """Append an attempt; ``next_at`` None ends the delivery (delivered or given up)."""
        try:
            with self.engine.begin() as conn:
                row = conn.execute(select(WEBHOOK_DELIVERIES.c.attempts).where(
                    WEBHOOK_DELIVERIES.c.id == delivery_id)).first()
                if row is None:
                    return
                attempts = [*json.loads(row[0]), attempt.model_dump(mode="json")]
                state = ("delivered" if attempt.delivered
                         else "failed" if next_at is None else "pending")
                conn.execute(update(WEBHOOK_DELIVERIES)
                             .where(WEBHOOK_DELIVERIES.c.id == delivery_id)
                             .values(attempts=json.dumps(attempts), state=state,
                                     next_at=next_at if next_at is not None else self.clock()))
        except SQLAlchemyError as exc:
            raise TrackingError(f"job store write failed: {exc}") from exc

    def webhook_of(self, job_id: str) -> WebhookRecord | None:
        """The job's callback and its attempts, if it has one."""
        rows = self._read(select(WEBHOOK_DELIVERIES).where(
            WEBHOOK_DELIVERIES.c.job_id == job_id).order_by(WEBHOOK_DELIVERIES.c.created))
        if not rows:
            return None
        last = rows[-1]
        return WebhookRecord(url=last.url, state=last.state, attempts=tuple(
            WebhookAttemptRecord.model_validate(a) for a in json.loads(last.attempts)))

    # -- rows ----------------------------------------------------------------------------

    def _record(self, row: Mapping[Any, Any], *,
                webhook_state: WebhookState | None = None) -> JobRecord:
        error = row.get("error")
        webhook = None
        if row.get("callback_url"):
            webhook = WebhookRecord(url=row["callback_url"], state=webhook_state or "pending")
        return JobRecord(
            id=row["id"], kind=row["kind"], status=row["status"],
            sub_status=row.get("sub_status"), sla=row["sla"], client=row["client"],
            experiment=row.get("experiment"), family=row.get("family"),
            backend=row.get("backend"), idempotency_key=row.get("idempotency_key"),
            trace_id=row["trace_id"],
            created_at=iso(row["created"]), updated_at=iso(row["updated"]),
            transitions=tuple(JobTransition.model_validate(t)
                              for t in json.loads(row["transitions"])),
            prefect_flow_run_id=row.get("flow_run_id"), mlflow_run_id=row.get("mlflow_run_id"),
            provider_job_ids=tuple(json.loads(row.get("provider_job_ids") or "[]")),
            dispatch_attempts=row.get("dispatch_attempts") or 0,
            downgrade=row.get("downgrade"),
            error=ErrorRecord.model_validate_json(error) if error else None,
            result_url=(f"/v1/jobs/{row['id']}/result" if row["status"] == "succeeded"
                        else None),
            webhook=webhook,
        )
