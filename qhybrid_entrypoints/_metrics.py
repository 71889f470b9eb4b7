"""The service's Prometheus metrics: this process's requests, plus the job store's view of
every worker's work (collected at scrape time; see :mod:`qhybrid_control._metrics`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

import qhybrid_usecases as usecases
from backends import QpuBudget, StateStore
from qhybrid.core import JOB_STATUSES, JobKind
from qhybrid_control import JobStore, SlaPolicy

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created: no rule reads them

# Every SLA class's queue target is a boundary, with room above the largest (3600 s), so that
# a p95 over a target can be seen.
QUEUE_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 900, 3600, 7200, 14400,
                 43200, float("inf"))
RESULT_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 14400, 43200,
                  float("inf"))
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, float("inf"))
QPU_BUCKETS = (0, 0.1, 1, 5, 10, 30, 60, 300, 900, float("inf"))
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


def _histogram(name: str, doc: str, labels: Sequence[str],
               samples: Iterable[tuple[tuple[str, ...], float]],
               buckets: Sequence[float]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=list(labels))
    grouped: dict[tuple[str, ...], list[float]] = {}
    for key, value in samples:
        grouped.setdefault(key, []).append(value)
    for key, values in sorted(grouped.items()):
        counts = [(str(b) if b != float("inf") else "+Inf", sum(1 for v in values if v <= b))
                  for b in buckets]
        family.add_metric(list(key), counts, sum(values))
    return family


class _StoreCollector(Collector):
    """Job-store aggregates as Prometheus families."""

    def __init__(self, jobs: JobStore, store: StateStore,
                 policies: Mapping[str, SlaPolicy], price_per_qpu_second: float,
                 budget: QpuBudget | None) -> None:
        self.jobs, self.store, self.policies = jobs, store, policies
        self.price, self.budget = price_per_qpu_second, budget

    def collect(self) -> Iterator[Metric]:
        snap = usecases.service_metrics(self.jobs, self.store, self.budget)
        jobs = GaugeMetricFamily("qhybrid_jobs", "Jobs by status, kind and SLA class.",
                                 labels=["status", "kind", "sla"])
        # Every combination from the start: a first failure must be an increase from 0.
        for status, kind, sla in itertools.product(JOB_STATUSES, get_args(JobKind),
                                                   sorted(self.policies)):
            jobs.add_metric([status, kind, sla], snap.jobs.get((status, kind, sla), 0))
        yield jobs
        oldest = GaugeMetricFamily("qhybrid_oldest_queued_seconds",
                                   "Age of the oldest job still queued, by SLA class (0: none).",
                                   labels=["sla"])
        for sla in sorted(self.policies):
            oldest.add_metric([sla], snap.oldest_queued.get(sla, 0.0))
        yield oldest
        yield _histogram("qhybrid_job_queue_seconds", "Accept to start of a job, by SLA class.",
                         ["sla"], (((sla,), s) for sla, s in snap.queue_seconds), QUEUE_BUCKETS)
        yield _histogram("qhybrid_job_result_seconds", "Accept to end of a job.",
                         ["kind", "sla"], (((k, sla), s) for k, sla, s in snap.result_seconds),
                         RESULT_BUCKETS)
        yield _histogram("qhybrid_dispatch_batch_size", "Jobs per dispatched flow run.",
                         ["sla"], (((sla,), float(n)) for sla, n in snap.batch_sizes),
                         BATCH_BUCKETS)
        yield _counter("qhybrid_backend_selected", "Ended jobs by the backend that ran them.",
                       "backend", snap.backends)
        yield _counter("qhybrid_retries", "Provider submission retries, by error class.",
                       "error_class", snap.retries)
        yield _counter("qhybrid_promotions", "Promotion decisions.", "decision",
                       _zeroed(snap.promotions, ("promoted", "refused")))
        yield _counter("qhybrid_webhook_deliveries", "Callbacks that ended, by outcome.",
                       "state", _zeroed(snap.webhooks, ("delivered", "failed")))
        pending = GaugeMetricFamily("qhybrid_webhook_pending", "Callbacks still to deliver.")
        pending.add_metric([], snap.webhooks.get("pending", 0))
        yield pending
        yield _counter("qhybrid_webhook_attempts", "Callback attempts by outcome.", "outcome",
                       _zeroed(snap.webhook_attempts, ("delivered", "failed")))
        qpu = CounterMetricFamily("qhybrid_qpu_seconds", "Estimated QPU seconds of ended jobs.")
        qpu.add_metric([], sum(snap.qpu_seconds))
        yield qpu
        yield _histogram("qhybrid_job_qpu_seconds", "Estimated QPU seconds per completed job.",
                         [], (((), s) for s in snap.qpu_seconds), QPU_BUCKETS)
        cost = CounterMetricFamily("qhybrid_cost", "Estimated QPU cost of ended jobs "
                                   "(QPU seconds x QHYBRID_QPU_PRICE_PER_SECOND).")
        cost.add_metric([], sum(snap.qpu_seconds) * self.price)
        yield cost
        cost_buckets = (*(b * self.price for b in QPU_BUCKETS[:-1]), float("inf"))
        yield _histogram("qhybrid_job_cost", "Estimated QPU cost per completed job.", [],
                         (((), s * self.price) for s in snap.qpu_seconds),
                         cost_buckets if self.price > 0 else (0, float("inf")))
        yield _counter("qhybrid_submissions", "Provider submissions that ended, by outcome.",
                       "status", _zeroed(snap.submissions, ("done", "failed")))
        in_flight = GaugeMetricFamily("qhybrid_submissions_in_flight",
                                      "Provider submissions not yet ended (ledger rows).")
        in_flight.add_metric([], sum(n for status, n in snap.submissions.items()
                                     if status not in ("done", "failed")))
        yield in_flight
        state = GaugeMetricFamily("qhybrid_breaker_state",
                                  "Circuit breaker per backend: 0 closed, 1 half-open, 2 open.",
                                  labels=["backend"])
        trips = CounterMetricFamily("qhybrid_breaker_trips", "Times a backend's breaker opened.",
                                    labels=["backend"])
        for backend, (breaker_state, n_trips) in sorted(snap.breakers.items()):
            state.add_metric([backend], {"closed": 0, "half-open": 1}.get(breaker_state, 2))
            trips.add_metric([backend], n_trips)
        yield state
        yield trips
        if self.budget is not None and snap.qpu_budget_spent is not None:
            cap = GaugeMetricFamily("qhybrid_qpu_budget_seconds",
                                    "QPU seconds the budget allows within its window "
                                    "(QHYBRID_QPU_BUDGET_SECONDS).")
            cap.add_metric([], self.budget.seconds)
            yield cap
            spent = GaugeMetricFamily("qhybrid_qpu_budget_spent_seconds",
                                      "QPU seconds charged within the budget's window, by the "
                                      "backends' estimates (every process's submissions).")
            spent.add_metric([], snap.qpu_budget_spent)
            yield spent
        target = GaugeMetricFamily("qhybrid_sla_queue_target_seconds",
                                   "Accept-to-start time each SLA class promises.",
                                   labels=["sla"])
        for name, policy in sorted(self.policies.items()):
            target.add_metric([name], policy.queue_target_seconds)
        yield target


def _zeroed(values: Mapping[str, int], keys: Iterable[str]) -> dict[str, int]:
    """Only ``keys``, each present (0 if absent), so a counter starts from 0."""
    return {key: values.get(key, 0) for key in keys}


def _counter(name: str, doc: str, label: str, values: Mapping[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, n in sorted(values.items()):
        family.add_metric([key], n)
    return family


class ServiceMetrics:
    """The API process's registry; with a QPU ``budget``, its cap and what the window has spent
    (``qhybrid_qpu_budget_seconds``, ``qhybrid_qpu_budget_spent_seconds``)."""

    def __init__(self, jobs: JobStore, store: StateStore,
                 policies: Mapping[str, SlaPolicy], *, price_per_qpu_second: float,
                 budget: QpuBudget | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter("qhybrid_http_requests", "HTTP requests by route and status.",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("qhybrid_http_request_seconds", "HTTP request latency.",
                                 ["method", "route"], buckets=REQUEST_BUCKETS,
                                 registry=self.registry)
        self.accepts = Counter("qhybrid_jobs_accepted", "Jobs accepted, by kind and SLA class.",
                               ["kind", "sla"], registry=self.registry)
        self.registry.register(_StoreCollector(jobs, store, policies, price_per_qpu_second,
                                               budget))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one HTTP request."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def accepted(self, kind: str, sla: str) -> None:
        """Count one new job."""
        self.accepts.labels(kind, sla).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
