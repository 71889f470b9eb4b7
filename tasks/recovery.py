"""Marking in Prefect the flow runs whose process was killed (SIGKILL): Crashed, not Running."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from prefect import get_client
from prefect.exceptions import ObjectNotFound
from prefect.states import Crashed


def mark_crashed(flow_run_ids: Iterable[str], reason: str) -> list[str]:
    """Set each flow run that is not yet final to ``Crashed`` with ``reason``.

    Returns:
        The flow runs marked.
    """
    marked: list[str] = []
    with get_client(sync_client=True) as client:
        for flow_run_id in flow_run_ids:
            try:
                state = client.read_flow_run(UUID(flow_run_id)).state
            except (ObjectNotFound, ValueError):
                continue  # another Prefect server's run, or not a flow run id
            if state is None or not state.is_final():
                client.set_flow_run_state(UUID(flow_run_id), Crashed(message=reason), force=True)
                marked.append(flow_run_id)
    return marked
