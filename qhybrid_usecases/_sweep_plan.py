"""A sweep's chunk plan, kept beside its output file until the sweep has ended.

Each chunk's idempotency key is a hash of its work, so a sweep run again after a kill
re-attaches to the chunks already paid for only if it cuts its points the same way. On a
simulator the chunk size follows from the spec, the backend and the settings alone; on
hardware it also follows the device's queue, its breaker and the budget left, which change
between the kill and the re-run. So the first attempt writes its plan (the chunk size, why,
and the sweep's identity) to ``<output>.plan.json`` before it submits anything, a re-run with
the same output and the same identity takes that plan instead of deciding anew, and the
sweep's end removes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from qhybrid.core import write_whole
from qhybrid_usecases._sweep_points import ChunkSize

PLAN_SCHEMA_VERSION = 1


def plan_path(output: Path) -> Path:
    """Where the plan of a sweep writing ``output`` is kept."""
    return output.with_name(f"{output.name}.plan.json")


def sweep_identity(spec_sha256: str, backend_fingerprint: str,
                   pins: dict[str, dict[str, object]], points: int) -> str:
    """What makes a re-run the same sweep: the spec, the backend and its transpilation, the
    inputs' pins (a points file's among them) and the number of points."""
    document = json.dumps({"spec": spec_sha256, "backend": backend_fingerprint, "pins": pins,
                           "points": points}, sort_keys=True, default=str)
    return hashlib.sha256(document.encode()).hexdigest()


def resumed_chunk(output: Path, identity: str) -> ChunkSize | None:
    """The chunk size an interrupted attempt at the same sweep chose, if its plan is there.

    A plan of another sweep, or one that cannot be read, is ignored (and replaced when the
    sweep writes its own)."""
    try:
        plan = json.loads(plan_path(output).read_text())
        if plan.get("identity") != identity:
            return None
        size, reason = int(plan["chunk_size"]), str(plan["reason"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if size < 1:
        return None
    return ChunkSize(size, f"{reason}; kept from an interrupted attempt at this sweep, so its "
                           "chunks re-attach")


def keep_plan(output: Path, identity: str, chunk: ChunkSize) -> None:
    """Write the plan before the first submission, whole or not at all."""
    write_whole(plan_path(output), json.dumps({
        "schema_version": PLAN_SCHEMA_VERSION, "identity": identity, "chunk_size": chunk.size,
        "reason": chunk.reason}))


def drop_plan(output: Path) -> None:
    """The sweep has ended: its plan is no longer needed."""
    with contextlib.suppress(FileNotFoundError):
        plan_path(output).unlink()
