"""The control plane: jobs, queues, SLA policy and webhooks. Imports qhybrid.core and
third-party libraries only; never prefect, mlflow, the use cases, tasks, flows or entry points."""

from qhybrid_control._job_rows import (
    ActiveJob,
    DueDelivery,
    JobEvent,
    JobFilter,
    NewJob,
    QueuedJob,
    iso,
)
from qhybrid_control._metrics import MetricsSnapshot
from qhybrid_control._metrics import snapshot as metrics_snapshot
from qhybrid_control._policy import (
    DEFAULT_POLICIES,
    DispatchGroup,
    SlaPolicy,
    class_settings,
    plan_dispatch,
    policies_from,
)
from qhybrid_control._store import JobStore
from qhybrid_control._tables import (
    DISPATCHES,
    JOB_EVENTS,
    JOB_RESULTS,
    JOBS,
    JOBS_META,
    WEBHOOK_DELIVERIES,
)
from qhybrid_control._webhooks import (
    WebhookAttempt,
    WebhookSignatureError,
    backoff_delay,
    deliver,
    sign,
    signature_header,
    verify,
)

__all__ = [
    "DEFAULT_POLICIES",
    "DISPATCHES",
    "JOBS",
    "JOBS_META",
    "JOB_EVENTS",
    "JOB_RESULTS",
    "WEBHOOK_DELIVERIES",
    "ActiveJob",
    "DispatchGroup",
    "DueDelivery",
    "JobEvent",
    "JobFilter",
    "JobStore",
    "MetricsSnapshot",
    "NewJob",
    "QueuedJob",
    "SlaPolicy",
    "WebhookAttempt",
    "WebhookSignatureError",
    "backoff_delay",
    "class_settings",
    "deliver",
    "iso",
    "metrics_snapshot",
    "plan_dispatch",
    "policies_from",
    "sign",
    "signature_header",
    "verify",
]
