"""Closing what a flow run left open: its provider jobs, sessions and batches."""

from __future__ import annotations

from collections.abc import Callable

from backends._protocol import Backend, SupportsRelease
from backends._store import StateStore
from qhybrid.core import LeaseRelease, QhybridError, SubmissionError


def release_leases(
    store: StateStore, flow_run_id: str, opener: Callable[[str], Backend], *, reason: str
) -> list[LeaseRelease]:
    """Cancel every lease ``flow_run_id`` still holds, so nothing is left running or billed.

    Args:
        store: The state store.
        flow_run_id: The flow run that failed, was cancelled or timed out.
        opener: Opens a backend by name (to reach its provider).
        reason: Why, recorded on each lease (e.g. ``flow cancelled``).

    Returns:
        One outcome per lease; a lease whose release failed stays open, so that a later
        release can try again. A cancelled job's ledger key is marked failed, so that a rerun
        submits afresh instead of re-attaching to a job that will never finish.
    """
    outcomes: list[LeaseRelease] = []
    for lease in store.leases(flow_run_id, status="open"):
        try:
            backend = opener(lease.backend)
            if isinstance(backend, SupportsRelease):
                backend.release(lease.kind, lease.provider_id)
            elif lease.kind == "job":
                backend.cancel(lease.provider_id)
            else:
                raise SubmissionError(f"{lease.backend} cannot close a {lease.kind}")
        except QhybridError as exc:
            outcomes.append(LeaseRelease(kind=lease.kind, provider_id=lease.provider_id,
                                         backend=lease.backend, released=False,
                                         detail=exc.message))
            continue
        store.close_lease(lease.provider_id, status="cancelled", note=reason)
        if lease.kind == "job":
            store.fail_job(lease.provider_id, {"error": "ExecutionError", "message": reason,
                                               "provider_status": "CANCELLED"})
        outcomes.append(LeaseRelease(kind=lease.kind, provider_id=lease.provider_id,
                                     backend=lease.backend, released=True, detail=reason))
    return outcomes
