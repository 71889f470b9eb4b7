"""The execution state store: what every process must agree on about work sent to providers.

Four tables, through SQLAlchemy Core so that SQLite (the default) and PostgreSQL both work:

- ``submissions``: the idempotency ledger. One row per key; the provider job id is written
  before any polling, so a retry or a restarted flow re-attaches instead of paying again. The
  row keeps the tags its job was submitted with (trace and job ids of the requests it serves),
  and the QPU seconds the backend estimated for it, which the QPU budget counts
  (:class:`QpuBudget`).
- ``local_jobs``: the job table of the local providers (Aer, qiskit-ibm-runtime's local mode).
  A simulator job outlives the process that submitted it, as a remote provider's job does.
- ``breakers``: one circuit breaker per backend, shared by every process.
- ``leases``: every provider job, session and batch a flow run opened, until it is closed.

``_META`` defines the tables for the queries; Alembic migrations (``backends._schema``) bring a
database to it when a store is opened.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Executable,
    Float,
    Integer,
    MetaData,
    Row,
    Select,
    String,
    Table,
    Text,
    and_,
    case,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlalchemy.sql.elements import ColumnElement

from backends._schema import migrate, serialise
from qhybrid.core import (
    InvalidInputError,
    QpuBudgetError,
    TrackingError,
    redact_text,
    redact_url,
)

_META = MetaData()

SUBMISSIONS = Table(
    "submissions", _META,
    Column("key", String(64), primary_key=True),
    Column("backend", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # submitting | submitted | done | failed
    Column("job_id", String(200), index=True),
    Column("error", Text),
    Column("owner", String(64)),  # the process that claimed the key last
    Column("attempts", Integer, nullable=False, default=0),
    Column("flow_run_id", String(64)),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
    Column("tags", Text),  # JSON list: the provider job tags of the claim's submission
    # The backends' estimates of this key's attempts that count (NULL: nothing charged),
    # and when the last was charged: the QPU budget's window.
    Column("qpu_seconds", Float),
    Column("charged_at", Float, index=True),
)

LOCAL_JOBS = Table(
    "local_jobs", _META,
    Column("job_id", String(64), primary_key=True),
    Column("backend", String(200), nullable=False),
    Column("tag", String(64), index=True),
    Column("status", String(16), nullable=False),  # DONE | ERROR | CANCELLED
    Column("result", Text),
    Column("error", Text),
    Column("created", Float, nullable=False),
)

BREAKERS = Table(
    "breakers", _META,
    Column("backend", String(200), primary_key=True),
    Column("state", String(16), nullable=False),  # closed | open | half-open
    Column("failures", Integer, nullable=False),
    Column("opened_at", Float),
    Column("trips", Integer, nullable=False),
    Column("last_error", Text),
)

LEASES = Table(
    "leases", _META,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("flow_run_id", String(64), index=True),
    Column("backend", String(200), nullable=False),
    Column("kind", String(16), nullable=False),  # job | session | batch
    Column("provider_id", String(200), nullable=False),
    Column("status", String(16), nullable=False),  # open | closed | cancelled
    Column("opened", Float, nullable=False),
    Column("closed", Float),
    Column("note", Text),
)


@dataclass(frozen=True)
class LedgerRow:
    """One idempotency-ledger row; ``tags`` are those its provider job was submitted with."""

    key: str
    backend: str
    status: str
    job_id: str | None
    error: dict[str, object] | None
    attempts: int
    updated: float
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class LeaseRow:
    """One lease."""

    id: int
    flow_run_id: str | None
    backend: str
    kind: str
    provider_id: str
    status: str


@dataclass(frozen=True)
class BreakerRow:
    """One backend's circuit breaker."""

    backend: str
    state: str
    failures: int
    trips: int


@dataclass(frozen=True)
class QpuBudget:
    """QPU seconds that every submission to a charging backend may use together, counted by the
    backends' estimates over the ``window_seconds`` before each claim (``QHYBRID_QPU_BUDGET_*``).
    """

    seconds: float
    window_seconds: float


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _engine(url: str) -> Engine:
    if url in ("sqlite://", "sqlite:///:memory:"):
        # A private database per store: one shared connection, or each would see an empty one.
        private = create_engine("sqlite://", poolclass=StaticPool,
                                connect_args={"check_same_thread": False})
        _migrate_or_dispose(private)
        return private
    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            if url.startswith("sqlite:///"):
                folder = Path(url.removeprefix("sqlite:///")).parent
                if folder.exists() and not folder.is_dir():
                    raise NotADirectoryError(20, "Not a directory", str(folder))
                folder.mkdir(parents=True, exist_ok=True)
                engine = create_engine(url, connect_args={"timeout": 30})
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = create_engine(url, pool_pre_ping=True)
            _migrate_or_dispose(engine)
            _ENGINES[url] = engine
        return engine


def _migrate_or_dispose(engine: Engine) -> None:
    try:
        migrate(engine)
    except BaseException:
        engine.dispose()  # a store that cannot be opened keeps no connection open
        raise


def _sqlite_pragmas(connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # WAL lets readers in other processes proceed during a write; NORMAL sync is durable in WAL.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _ledger_row(r: Row[Any]) -> LedgerRow:
    return LedgerRow(r.key, r.backend, r.status, r.job_id,
                     json.loads(r.error) if r.error else None, r.attempts, r.updated,
                     tuple(json.loads(r.tags)) if r.tags else ())


def _spent_since(since: float) -> Select[tuple[float]]:
    c = SUBMISSIONS.c
    return select(func.coalesce(func.sum(c.qpu_seconds), 0.0)).where(c.charged_at >= since)


def _spent(conn: Connection, since: float) -> float:
    return float(conn.execute(_spent_since(since)).scalar_one())


def qpu_budget_message(budget: QpuBudget, spent: float, charge: float) -> str:
    """Why a submission of ``charge`` QPU seconds is refused, ``spent`` seconds being used."""
    window = budget.window_seconds
    span = f"{window / 86_400:.6g} days" if window >= 86_400 else f"{window / 3600:.6g} hours"
    return (f"the QPU budget left does not pay for this submission: it needs {charge:.6g} s "
            f"by the backend's estimate, and {max(budget.seconds - spent, 0.0):.6g} s of "
            f"{budget.seconds:.6g} s are left in the last {span} (the window: "
            "QHYBRID_QPU_BUDGET_WINDOW_SECONDS); nothing was sent")


def _reclaim(row: dict[str, Any], stale_after: float) -> Executable:
    """The update that takes a key already in the ledger, if it is free (see ``claim``).

    Its charge replaces the key's, but adds to it when the key's last job reached the provider
    and failed (it may have run): each attempt that may have used the QPU counts.
    """
    c = SUBMISSIONS.c
    free = or_(c.status == "failed",
               and_(c.status == "submitting",
                    or_(c.owner == row["owner"], c.updated < row["updated"] - stale_after)))
    charge = row["qpu_seconds"]
    if charge is not None:
        ran = and_(c.status == "failed", c.job_id.is_not(None))
        charge = case((ran, func.coalesce(c.qpu_seconds, 0.0) + charge), else_=charge)
    return update(SUBMISSIONS).where(c.key == row["key"], free).values(
        status="submitting", job_id=None, error=None, owner=row["owner"],
        flow_run_id=row["flow_run_id"], attempts=c.attempts + 1, updated=row["updated"],
        tags=row["tags"], qpu_seconds=charge,
        charged_at=row["charged_at"] if charge is not None else c.charged_at)


def _less(charged: ColumnElement[float], refund: float) -> ColumnElement[float | None]:
    """``charged`` less ``refund``; NULL (nothing charged) when nothing is left."""
    return case((charged - refund > 1e-12, charged - refund), else_=None)


class StateStore:
    """The shared execution state, behind one small API.

    Args:
        url: A SQLAlchemy URL (``sqlite:///...`` or ``postgresql+psycopg://...``).

    Raises:
        InvalidInputError: The URL is malformed or names an unknown database driver.
        TrackingError: The store cannot be opened or written.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        shown = redact_url(url)
        try:
            self.engine = _engine(url)
        except (ArgumentError, NoSuchModuleError) as exc:  # a URL nothing can connect to
            raise InvalidInputError(
                f"not a usable state store URL '{shown}': {redact_text(str(exc), url)}",
                field="QHYBRID_STATE_URL") from None
        except ImportError as exc:  # a known database whose driver is not installed
            raise InvalidInputError(
                f"the state store URL '{shown}' needs the Python package '{exc.name}', which "
                "is not installed (PostgreSQL: pip install 'qhybrid[postgres]')",
                field="QHYBRID_STATE_URL") from None
        except OSError as exc:  # its SQLite folder cannot be created
            raise InvalidInputError(f"cannot create the state store '{shown}': {exc.strerror}",
                                    field="QHYBRID_STATE_URL") from None
        except SQLAlchemyError as exc:
            raise TrackingError(f"cannot open the state store {shown}: "
                                f"{redact_text(str(exc), url)}") from None

    def _write(self, statement: Executable) -> int:
        try:
            with self.engine.begin() as conn:
                return conn.execute(statement).rowcount
        except SQLAlchemyError as exc:
            raise TrackingError(f"state store write failed: {exc}") from exc

    def _read(self, statement: Executable) -> list[Row[Any]]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(statement))
        except SQLAlchemyError as exc:
            raise TrackingError(f"state store read failed: {exc}") from exc

    # -- the idempotency ledger -------------------------------------------------------------

    def ledger(self, key: str) -> LedgerRow | None:
        """The ledger row of ``key``, if any."""
        rows = self._read(select(SUBMISSIONS).where(SUBMISSIONS.c.key == key))
        return _ledger_row(rows[0]) if rows else None

    def ledger_by_job(self, job_id: str) -> LedgerRow | None:
        """The ledger row whose provider job is ``job_id``, if any (e.g. to read its tags)."""
        rows = self._read(select(SUBMISSIONS).where(SUBMISSIONS.c.job_id == job_id).limit(1))
        return _ledger_row(rows[0]) if rows else None

    def claim(self, key: str, backend: str, kind: str, flow_run_id: str | None, *,
              owner: str, stale_after: float, tags: tuple[str, ...] = (),
              qpu_seconds: float = 0.0, budget: QpuBudget | None = None) -> bool:
        """Claim ``key`` for submission, atomically; written before the provider sees it.

        A key is free when it has no row, when its last job failed, or when it is ``submitting``
        under this ``owner`` or under one silent for ``stale_after`` seconds (a crashed process).
        ``tags`` (the provider job tags of this submission) replace those of an earlier claim.
        A claim charges ``qpu_seconds`` (the backend's estimate), now: it replaces the key's
        earlier charge, or adds to it if the key's last job reached the provider and failed.

        With a ``budget``, the claim is written and then every charge of the budget's window
        summed, in one transaction that no other budgeted claim interleaves with
        (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL, at READ COMMITTED so
        that the sum sees the claims committed while it waited); over the budget, the claim is
        rolled back. A claim that is not taken charges nothing and is never refused.

        Returns:
            True if this caller now owns the submission; False if another process is submitting
            it or the key already has a job.

        Raises:
            QpuBudgetError: The budget left in its window does not pay for ``qpu_seconds``.
            TrackingError: The store cannot be read or written.
        """
        now = time.time()
        charge = qpu_seconds if qpu_seconds > 0 else None
        row = {"key": key, "backend": backend, "kind": kind, "status": "submitting",
               "attempts": 1, "owner": owner, "flow_run_id": flow_run_id, "created": now,
               "updated": now, "tags": json.dumps(list(tags)) if tags else None,
               "qpu_seconds": charge, "charged_at": now if charge is not None else None}
        if budget is None or charge is None:
            try:
                self._write(insert(SUBMISSIONS).values(**row))
                return True
            except TrackingError as exc:
                if not isinstance(exc.__cause__, IntegrityError):
                    raise
            return bool(self._write(_reclaim(row, stale_after)))
        try:
            with self.engine.connect() as conn:
                if conn.dialect.name == "postgresql":
                    conn = conn.execution_options(isolation_level="READ COMMITTED")
                with conn.begin():
                    serialise(conn)
                    try:
                        with conn.begin_nested():  # a savepoint: a taken key leaves the rest
                            conn.execute(insert(SUBMISSIONS).values(**row))
                    except IntegrityError:
                        if not conn.execute(_reclaim(row, stale_after)).rowcount:
                            return False
                    spent = _spent(conn, now - budget.window_seconds)
                    if spent > budget.seconds:
                        raise QpuBudgetError(
                            qpu_budget_message(budget, spent - charge, charge),
                            field="QHYBRID_QPU_BUDGET_SECONDS", provider_status="QPU_BUDGET")
                    return True
        except SQLAlchemyError as exc:
            raise TrackingError(f"state store write failed: {exc}") from exc

    def qpu_spent(self, since: float) -> float:
        """The QPU seconds charged since ``since`` (a unix time), by every process."""
        return float(self._read(_spent_since(since))[0][0])

    def refund(self, key: str, qpu_seconds: float) -> None:
        """The last attempt of ``key`` never ran (the provider refused it): its charge of
        ``qpu_seconds`` is taken back, what earlier attempts charged stays."""
        self._write(update(SUBMISSIONS).where(SUBMISSIONS.c.key == key).values(
            qpu_seconds=_less(SUBMISSIONS.c.qpu_seconds, qpu_seconds)))

    def submitted(self, key: str, job_id: str) -> None:
        """Record the provider job id of ``key``; done before any polling."""
        self._write(update(SUBMISSIONS).where(SUBMISSIONS.c.key == key).values(
            status="submitted", job_id=job_id, updated=time.time()))

    def finished(self, key: str, *, error: dict[str, object] | None = None,
                 refund: float = 0.0) -> None:
        """Record that the job of ``key`` is done, or failed with ``error``; with ``refund``,
        in the same write, the failed attempt never ran: its charge is taken back."""
        values: dict[str, object] = {"status": "failed" if error else "done",
                                     "error": json.dumps(error) if error else None,
                                     "updated": time.time()}
        if refund > 0:
            values["qpu_seconds"] = _less(SUBMISSIONS.c.qpu_seconds, refund)
        self._write(update(SUBMISSIONS).where(SUBMISSIONS.c.key == key).values(**values))

    def fail_job(self, job_id: str, error: dict[str, object]) -> None:
        """Mark the ledger key of a job that will never finish (e.g. cancelled) as failed, so
        that a rerun submits afresh instead of re-attaching to it."""
        self._write(update(SUBMISSIONS).where(
            SUBMISSIONS.c.job_id == job_id, SUBMISSIONS.c.status == "submitted").values(
            status="failed", error=json.dumps(error), updated=time.time()))

    def ledger_counts(self) -> dict[str, int]:
        """Ledger rows by status."""
        out: dict[str, int] = {}
        for row in self._read(select(SUBMISSIONS.c.status)):
            out[row.status] = out.get(row.status, 0) + 1
        return out

    # -- local provider jobs ----------------------------------------------------------------

    def put_local_job(self, job_id: str, backend: str, tag: str | None, status: str,
                      result: str | None, error: str | None) -> None:
        """Store a local provider job and its outcome."""
        self._write(insert(LOCAL_JOBS).values(job_id=job_id, backend=backend, tag=tag,
                                              status=status, result=result, error=error,
                                              created=time.time()))

    def local_job(self, job_id: str) -> tuple[str, str | None, str | None] | None:
        """``(status, result JSON, error JSON)`` of a local job, or None if unknown."""
        rows = self._read(select(LOCAL_JOBS.c.status, LOCAL_JOBS.c.result, LOCAL_JOBS.c.error)
                          .where(LOCAL_JOBS.c.job_id == job_id))
        return (rows[0].status, rows[0].result, rows[0].error) if rows else None

    def local_job_by_tag(self, backend: str, tag: str, *, since: float | None = None) -> str | None:
        """The newest local job of ``backend`` tagged ``tag`` (created at or after ``since``)."""
        query = select(LOCAL_JOBS.c.job_id).where(LOCAL_JOBS.c.backend == backend,
                                                  LOCAL_JOBS.c.tag == tag)
        if since is not None:
            query = query.where(LOCAL_JOBS.c.created >= since)
        rows = self._read(query.order_by(LOCAL_JOBS.c.created.desc()).limit(1))
        return rows[0].job_id if rows else None

    def cancel_local_job(self, job_id: str) -> bool:
        """Cancel a local job that has not finished; False if it had."""
        return bool(self._write(update(LOCAL_JOBS).where(
            LOCAL_JOBS.c.job_id == job_id, LOCAL_JOBS.c.status.notin_(("DONE", "ERROR")))
            .values(status="CANCELLED")))

    def count_local_jobs(self, backend: str | None = None) -> int:
        """Local jobs ever accepted (of one backend, if given)."""
        query = select(LOCAL_JOBS.c.job_id)
        if backend is not None:
            query = query.where(LOCAL_JOBS.c.backend == backend)
        return len(self._read(query))

    # -- breakers ---------------------------------------------------------------------------

    def breaker(self, backend: str) -> tuple[str, int, float | None, int]:
        """``(state, consecutive failures, opened_at, trips)`` of a backend's breaker."""
        rows = self._read(select(BREAKERS).where(BREAKERS.c.backend == backend))
        if not rows:
            return "closed", 0, None, 0
        r = rows[0]
        return r.state, r.failures, r.opened_at, r.trips

    def breakers(self) -> list[BreakerRow]:
        """Every backend's breaker that has ever counted a failure."""
        return [BreakerRow(backend=r.backend, state=r.state, failures=r.failures, trips=r.trips)
                for r in self._read(select(BREAKERS).order_by(BREAKERS.c.backend))]

    def set_breaker(self, backend: str, state: str, failures: int, opened_at: float | None,
                    trips: int, last_error: str | None = None) -> None:
        """Write a backend's breaker."""
        values = {"state": state, "failures": failures, "opened_at": opened_at, "trips": trips,
                  "last_error": last_error}
        if not self._write(update(BREAKERS).where(BREAKERS.c.backend == backend).values(**values)):
            try:
                self._write(insert(BREAKERS).values(backend=backend, **values))
            except TrackingError as exc:
                if not isinstance(exc.__cause__, IntegrityError):
                    raise
                self._write(update(BREAKERS).where(BREAKERS.c.backend == backend).values(**values))

    def take_breaker(self, backend: str, from_state: str, opened_at: float | None,
                     to_state: str, now: float) -> bool:
        """Move a breaker ``from_state`` -> ``to_state`` only if nobody moved it since it was
        read (compare-and-set on its state and ``opened_at``); ``opened_at`` becomes ``now``."""
        c = BREAKERS.c
        same_time = c.opened_at.is_(None) if opened_at is None else c.opened_at == opened_at
        return bool(self._write(update(BREAKERS).where(
            c.backend == backend, c.state == from_state, same_time).values(
            state=to_state, opened_at=now)))

    # -- leases -----------------------------------------------------------------------------

    def open_lease(
        self, flow_run_id: str | None, backend: str, kind: str, provider_id: str
    ) -> None:
        """Record an open provider job, session or batch."""
        self._write(insert(LEASES).values(flow_run_id=flow_run_id, backend=backend, kind=kind,
                                          provider_id=provider_id, status="open",
                                          opened=time.time()))

    def close_lease(
        self, provider_id: str, *, status: str = "closed", note: str | None = None
    ) -> int:
        """Close (or mark cancelled) an open lease; returns how many were open (0 or 1)."""
        return self._write(update(LEASES).where(LEASES.c.provider_id == provider_id,
                                         LEASES.c.status == "open")
                    .values(status=status, closed=time.time(), note=note))

    def leases(
        self, flow_run_id: str | None = None, *, status: str | None = None
    ) -> list[LeaseRow]:
        """Leases, optionally of one flow run and in one status."""
        query = select(LEASES).order_by(LEASES.c.id)
        if flow_run_id is not None:
            query = query.where(LEASES.c.flow_run_id == flow_run_id)
        if status is not None:
            query = query.where(LEASES.c.status == status)
        return [LeaseRow(r.id, r.flow_run_id, r.backend, r.kind, r.provider_id, r.status)
                for r in self._read(query)]
