"""Closing what a flow run left open: its provider jobs, sessions and batches."""

from __future__ import annotations

from collections.abc import Callable

from backends._store import StateStore
from qhybrid.core import QhybridError


def release_leases(
    store: StateStore, flow_run_id: str, opener: Callable[[str], object], *, reason: str
) -> list[str]:
    """Cancel every lease ``flow_run_id`` still holds, so nothing is left running or billed.

    Args:
        store: The state store.
        flow_run_id: The flow run that failed, was cancelled or timed out.
        opener: Opens a backend by name (to reach its provider).
        reason: Why, recorded on each lease (e.g. ``flow cancelled``).

    Returns:
        One line per lease released, or per lease whose release failed (it stays open, so a
        later release can try again).
    """
    lines: list[str] = []
    for lease in store.leases(flow_run_id, status="open"):
        try:
            backend = opener(lease.backend)
            backend.release(lease.kind, lease.provider_id)  # type: ignore[attr-defined]
        except QhybridError as exc:
            lines.append(f"{lease.kind} {lease.provider_id} on {lease.backend}: "
                         f"release failed ({exc.message}); still open")
            continue
        store.close_lease(lease.provider_id, status="cancelled", note=reason)
        lines.append(f"{lease.kind} {lease.provider_id} on {lease.backend}: cancelled ({reason})")
    return lines
