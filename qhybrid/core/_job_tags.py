"""Provider job tags: the trace and job ids of the requests a provider job serves.

One trace id runs from the HTTP request through the job row, the Prefect flow run, the MLflow
run, the webhook headers and the log lines; these tags carry it onto the provider's jobs too, so
that a job found at IBM leads back to its request (``service.jobs(job_tags=["trace:<id>"])``),
and a request leads to its jobs at IBM without the job store.

IBM publishes no bound on job tags: the REST API's ``tags`` is a plain ``string[]`` and
qiskit-ibm-runtime 0.51 checks only that they are strings (``validate_job_tags``). A tag is
metadata, so qhybrid keeps a budget of its own, well inside anything a service would refuse:
:data:`MAX_JOB_TAGS` tags of at most :data:`MAX_JOB_TAG_CHARS` characters from here, plus the
backend's own idempotency tag (``qhybrid-<sha256>``, 72 characters) on real devices.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from qhybrid.core._backend_name import is_trace_id

MAX_JOB_TAGS: Final = 8
"""Tags :func:`provider_job_tags` gives one provider job, ``qhybrid`` included."""

MAX_JOB_TAG_CHARS: Final = 64
"""The longest tag :func:`provider_job_tags` gives (its own are at most 40: ``job:<uuid>``)."""

PLATFORM_TAG: Final = "qhybrid"

# The job ids the job store hands out (uuids), as RunOptions.job_id accepts them.
_JOB_ID = re.compile(r"[0-9a-f-]{1,36}")


def provider_job_tags(traces: Iterable[tuple[str | None, str | None]]) -> tuple[str, ...]:
    """The tags of a provider job that serves the requests ``traces``, each ``(trace id, job
    id)``: ``qhybrid``, then ``trace:<trace id>`` for each distinct trace id, then
    ``job:<job id>`` for each distinct job id, in the order given.

    At most :data:`MAX_JOB_TAGS` tags. A run has one request (three tags); a group of requests
    sharing one provider job (an evaluation group) may have more than fit, and then what is
    dropped is, first, the job tags (a trace id finds the request, its job row names its job
    id), then the trace tags after the first ``MAX_JOB_TAGS - 1`` distinct trace ids. A request
    left untagged is still linked to the provider job: its job row records the provider job ids,
    and the group's MLflow run every trace and job id.

    An id that is None or malformed (not a W3C trace id; not a job store id) gives no tag.
    """
    pairs = list(traces)
    trace_tags = [f"trace:{t}" for t, _ in pairs if t is not None and is_trace_id(t)]
    job_tags = [f"job:{j}" for _, j in pairs if j is not None and _JOB_ID.fullmatch(j)]
    tags = dict.fromkeys(tag for tag in (PLATFORM_TAG, *trace_tags, *job_tags)
                         if len(tag) <= MAX_JOB_TAG_CHARS)
    return tuple(tags)[:MAX_JOB_TAGS]
